<?php

declare(strict_types=1);

namespace Durable;

/**
 * The `x-durable-signature` header: lowercase hex HMAC-SHA256 of the exact body bytes.
 */
final class Signature
{
    /** The header name, lower-case. */
    public const HEADER = 'x-durable-signature';

    /** Sign the exact bytes of $body with $key. */
    public static function sign(string $body, string $key): string
    {
        return hash_hmac('sha256', $body, $key);
    }

    /** Tell, in constant time, whether $signature is the signature of $body under $key. */
    public static function verify(string $body, string $key, ?string $signature): bool
    {
        return $signature !== null && $signature !== ''
            && hash_equals(self::sign($body, $key), strtolower(trim($signature)));
    }
}
