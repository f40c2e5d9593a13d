<?php

declare(strict_types=1);

namespace Durable;

/**
 * Accepted nonces as empty files in one directory, shared by every PHP process of the host.
 *
 * A claim links `<dir>/<nonce>` into place, which succeeds for exactly one process; the file's mtime
 * is its expiry. An expired file may be replaced: its message is stale by then (it expires
 * 10 minutes after acceptance, a message is fresh for 5 minutes around its t). Expired files are
 * removed at most once a minute. The directory must be this user's alone (0700): whoever can delete in
 * it can re-enable replays.
 */
final class FileNonceStore implements NonceStore
{
    private const PRUNE_EVERY_S = 60;

    public function __construct(public readonly string $directory)
    {
        if ($directory === '') {
            throw new \InvalidArgumentException('the nonce directory must be a non-empty path');
        }
    }

    /** The default: `<system temp dir>/durable-nonces-<user id>`. */
    public static function default(): self
    {
        $uid = function_exists('posix_geteuid') ? posix_geteuid() : getmyuid();
        return new self(rtrim(sys_get_temp_dir(), '/') . "/durable-nonces-$uid");
    }

    public function claim(string $nonce, int $t, int $nowMs): bool
    {
        if (!preg_match('/^[A-Za-z0-9_-]{16,64}$/D', $nonce)) { // a file name: never a path
            throw new \InvalidArgumentException("nonce must be 16 to 64 characters of [A-Za-z0-9_-], got '$nonce'");
        }
        $this->ensureDirectory();
        $path = "$this->directory/$nonce";
        // Made complete (mtime = expiry) under a private name, then linked into place: link() fails when
        // the name exists, so exactly one process claims it, and no one ever sees a half-made entry.
        $draft = "$this->directory/.claim-" . bin2hex(random_bytes(8));
        if (!touch($draft, intdiv($nowMs + SignatureV2::NONCE_TTL_MS + 999, 1000))) {
            throw new \RuntimeException("nonce store: cannot write in $this->directory");
        }
        try {
            if (!@link($draft, $path)) {
                clearstatcache(true, $path);
                $expires = @filemtime($path);
                if ($expires === false || $expires * 1000 > $nowMs || !@rename($draft, $path)) {
                    return false; // held by an earlier claim: a replay
                }
            }
        } finally {
            @unlink($draft);
        }
        $this->pruneNowAndThen($nowMs);
        return true;
    }

    private function ensureDirectory(): void
    {
        if (!is_dir($this->directory) && !@mkdir($this->directory, 0700, true) && !is_dir($this->directory)) {
            throw new \RuntimeException("nonce store: cannot create directory $this->directory");
        }
        clearstatcache(true, $this->directory);
        $uid = function_exists('posix_geteuid') ? posix_geteuid() : null; // without ext-posix: the mode alone
        if (($uid !== null && fileowner($this->directory) !== $uid) || (fileperms($this->directory) & 0077) !== 0) {
            $owner = $uid === null ? 'this user' : "user $uid";
            throw new \RuntimeException("nonce store: $this->directory must be owned by $owner with mode 0700 (others could re-enable replays)");
        }
    }

    private function pruneNowAndThen(int $nowMs): void
    {
        $marker = "$this->directory/.pruned";
        $last = @filemtime($marker);
        $now = intdiv($nowMs, 1000);
        if ($last !== false && $now - $last < self::PRUNE_EVERY_S && $last <= $now) {
            return;
        }
        touch($marker, $now);
        foreach (glob("$this->directory/*") ?: [] as $file) {
            $mtime = @filemtime($file);
            if ($mtime !== false && $mtime * 1000 <= $nowMs) {
                @unlink($file);
            }
        }
    }
}
