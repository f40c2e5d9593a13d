<?php

declare(strict_types=1);

namespace Durable;

/**
 * A refused x-durable-signature-v2: $reason is one of malformed | stale | mac | reply | replay
 * (docs/protocol.md, "Signing"); the message names the header and what was wrong.
 */
final class SignatureError extends \RuntimeException
{
    public function __construct(public readonly string $reason, string $message)
    {
        parent::__construct($message);
    }
}
