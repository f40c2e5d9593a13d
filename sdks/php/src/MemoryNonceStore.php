<?php

declare(strict_types=1);

namespace Durable;

/**
 * Accepted nonces in this process's memory, each kept SignatureV2::NONCE_TTL_MS, at most $capacity.
 *
 * For a long-running PHP server only (see NonceStore). When full, the oldest entry is dropped and its
 * t becomes a floor: a message signed at or before the floor is refused, since it could be the replay of
 * a dropped nonce. Only messages with a valid MAC are claimed, so only the key's holder can fill it.
 */
final class MemoryNonceStore implements NonceStore
{
    /** @var array<string, array{int, int}> nonce => [t, expires at], oldest claim first */
    private array $entries = [];

    private int $floor = PHP_INT_MIN;

    public function __construct(public readonly int $capacity = 100_000)
    {
        if ($capacity < 1) {
            throw new \InvalidArgumentException("capacity must be at least 1, got $capacity");
        }
    }

    public function claim(string $nonce, int $t, int $nowMs): bool
    {
        foreach ($this->entries as $old => [, $expires]) { // claims are in time order: stop at the first live one
            if ($expires > $nowMs) {
                break;
            }
            unset($this->entries[$old]);
        }
        if (isset($this->entries[$nonce]) || $t <= $this->floor) {
            return false;
        }
        while (count($this->entries) >= $this->capacity) {
            $oldest = (string) array_key_first($this->entries);
            $this->floor = max($this->floor, $this->entries[$oldest][0]);
            unset($this->entries[$oldest]);
        }
        $this->entries[$nonce] = [$t, $nowMs + SignatureV2::NONCE_TTL_MS];
        return true;
    }

    /** How many nonces are held now. */
    public function count(): int
    {
        return count($this->entries);
    }
}
