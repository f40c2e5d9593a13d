<?php

declare(strict_types=1);

namespace Durable;

/**
 * The `x-durable-signature-v2` header: `t=<epoch ms>,n=<nonce>[,r=<nonce answered>],s=<mac>`, where
 * mac = lowercase hex HMAC-SHA256(key, "v2\n" + sender + "\n" + t + "\n" + n + "\n" + r + "\n" + body).
 *
 * The sender ('engine' or 'app') is not sent: the receiver knows whom it expects, so a message cannot be
 * replayed in the other direction. `t` makes a message expire (5 minutes either way), `n` makes a request
 * single-use (the receiver keeps accepted nonces, see NonceStore), and `r` binds an answer to the request
 * it answers. Verification is pure: the caller supplies the clock and does the replay check.
 */
final class SignatureV2
{
    /** The header name, lower-case. */
    public const HEADER = 'x-durable-signature-v2';

    public const ENGINE = 'engine';
    public const APP = 'app';

    /** A message whose t is further than this from the receiver's clock, either way, is stale. */
    public const MAX_SKEW_MS = 300_000;

    /** How long a receiver remembers an accepted request nonce: longer than any message stays fresh. */
    public const NONCE_TTL_MS = 600_000;

    private const NONCE = '/^[A-Za-z0-9_-]{16,64}$/D';
    private const TIME = '/^(?:0|[1-9][0-9]{0,15})$/D'; // canonical decimal: the MAC covers these exact digits
    private const MAC = '/^[0-9a-fA-F]{64}$/D';

    /** A fresh nonce: 16 random bytes as 32 lowercase hex digits. */
    public static function nonce(): string
    {
        return bin2hex(random_bytes(16));
    }

    /** The MAC over $body for $sender at $t with nonce $n, answering $r ('' for a request). */
    public static function mac(string $body, string $key, string $sender, int $t, string $n, string $r = ''): string
    {
        return hash_hmac('sha256', "v2\n$sender\n$t\n$n\n$r\n" . $body, $key);
    }

    /**
     * The header value signing $body as $sender at $t (epoch ms) with nonce $n; $r is the nonce of the
     * request this message answers ('' for a request, and then no `r=` part is written).
     */
    public static function sign(string $body, string $key, string $sender, int $t, string $n, string $r = ''): string
    {
        if ($key === '') {
            throw new \InvalidArgumentException('the signing key must be a non-empty string');
        }
        if ($sender !== self::ENGINE && $sender !== self::APP) {
            throw new \InvalidArgumentException("sender must be 'engine' or 'app', got '$sender'");
        }
        if ($t < 0) {
            throw new \InvalidArgumentException("t must be non-negative epoch milliseconds, got $t");
        }
        foreach (['n' => $n, 'r' => $r] as $field => $nonce) {
            if (($field === 'n' || $nonce !== '') && !preg_match(self::NONCE, $nonce)) {
                throw new \InvalidArgumentException("$field must be 16 to 64 characters of [A-Za-z0-9_-], got '$nonce'");
            }
        }
        $mac = self::mac($body, $key, $sender, $t, $n, $r);
        return "t=$t,n=$n" . ($r === '' ? '' : ",r=$r") . ",s=$mac";
    }

    /**
     * Split a header value into its parts; the order of the parts is free, each may appear once.
     *
     * @return array{t: int, n: string, r: string|null, s: string}
     * @throws SignatureError reason 'malformed', naming what is missing or wrong
     */
    public static function parse(?string $header): array
    {
        $header = trim((string) $header);
        if ($header === '') {
            throw self::malformed('missing');
        }
        $parts = [];
        foreach (explode(',', $header) as $part) {
            [$name, $value] = array_map('trim', explode('=', $part, 2)) + [1 => null];
            if (!in_array($name, ['t', 'n', 'r', 's'], true) || $value === null) {
                throw self::malformed("unexpected part '" . self::excerpt($part) . "' (expected t=, n=, r=, s=)");
            }
            if (isset($parts[$name])) {
                throw self::malformed("$name= appears twice");
            }
            $parts[$name] = $value;
        }
        foreach (['t', 'n', 's'] as $name) {
            if (!isset($parts[$name])) {
                throw self::malformed("no $name= part");
            }
        }
        if (!preg_match(self::TIME, $parts['t'])) {
            throw self::malformed("t must be integer epoch milliseconds, got '" . self::excerpt($parts['t']) . "'");
        }
        foreach (['n', 'r'] as $name) {
            if (isset($parts[$name]) && !preg_match(self::NONCE, $parts[$name])) {
                throw self::malformed("$name must be 16 to 64 characters of [A-Za-z0-9_-], got '" . self::excerpt($parts[$name]) . "'");
            }
        }
        if (!preg_match(self::MAC, $parts['s'])) {
            throw self::malformed('s must be 64 hex digits');
        }
        return ['t' => (int) $parts['t'], 'n' => $parts['n'], 'r' => $parts['r'] ?? null, 's' => strtolower($parts['s'])];
    }

    /**
     * Verify $header over $body as sent by $sender: the MAC under any of $keys (the primary, then the
     * fallback while a key is rotated), t within 5 minutes of $nowMs, and `r` equal to $replyTo (the
     * nonce of the request this answers; null for a request, which must carry no `r`). Checks run in
     * that order, so a message without a valid MAC learns nothing but 'mac'.
     *
     * @param list<string|null> $keys empty and null entries are skipped
     * @return array{t: int, n: string, r: string|null, s: string} the accepted header's parts
     * @throws SignatureError reason malformed | mac | stale | reply
     */
    public static function verify(string $body, array $keys, ?string $header, string $sender, ?string $replyTo, int $nowMs): array
    {
        $parts = self::parse($header);
        $matched = false;
        foreach ($keys as $key) {
            if ($key !== null && $key !== '') { // every key is tried: no early exit reveals which one matched
                $matched = hash_equals(self::mac($body, $key, $sender, $parts['t'], $parts['n'], $parts['r'] ?? ''), $parts['s']) || $matched;
            }
        }
        if (!$matched) {
            throw new SignatureError('mac', self::HEADER . ': wrong signature (no signing key matches)');
        }
        $skew = $nowMs - $parts['t'];
        if (abs($skew) > self::MAX_SKEW_MS) {
            $when = $skew > 0 ? "{$skew} ms old" : -$skew . ' ms ahead of this clock';
            throw new SignatureError('stale', self::HEADER . ": stale: t is $when (at most " . self::MAX_SKEW_MS . ' ms either way)');
        }
        if ($replyTo === null && $parts['r'] !== null) {
            throw new SignatureError('reply', self::HEADER . ': a request must not carry r= (this is an answer to another request)');
        }
        if ($replyTo !== null && ($parts['r'] === null || !hash_equals($replyTo, $parts['r']))) {
            $why = $parts['r'] === null ? 'carries no r=' : 'answers another request (r= is not the nonce sent)';
            throw new SignatureError('reply', self::HEADER . ": the answer $why");
        }
        return $parts;
    }

    private static function malformed(string $why): SignatureError
    {
        return new SignatureError('malformed', self::HEADER . ": malformed: $why");
    }

    /** At most 40 characters of attacker-controlled text, so an error message stays short. */
    private static function excerpt(string $text): string
    {
        return strlen($text) > 40 ? substr($text, 0, 40) . '…' : $text;
    }
}
