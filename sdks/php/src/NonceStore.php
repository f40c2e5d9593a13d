<?php

declare(strict_types=1);

namespace Durable;

/**
 * Where the served endpoint remembers the invoke nonces it accepted, so a replayed invoke is refused.
 *
 * PHP keeps no memory between requests under PHP-FPM, Apache or `php -S`, so the default for
 * Serve::handle / Serve::dispatch is FileNonceStore (shared by every PHP process of the host); a
 * long-running server (RoadRunner, Swoole, FrankenPHP workers, ReactPHP) may use MemoryNonceStore;
 * several hosts behind one URL need a shared implementation (Redis SET NX PX, a database unique key).
 */
interface NonceStore
{
    /**
     * Record $nonce, accepted at $nowMs for a message signed at $t; false when it was already recorded
     * within SignatureV2::NONCE_TTL_MS (a replay), true otherwise. Must be atomic: of two concurrent
     * claims of one nonce, at most one returns true.
     */
    public function claim(string $nonce, int $t, int $nowMs): bool;
}
