<?php

declare(strict_types=1);

namespace Durable;

/**
 * The wire's JSON: compact UTF-8, slashes and non-ASCII unescaped, never NaN, INF or partial output.
 */
final class Json
{
    /**
     * Encode $value. An empty PHP array encodes as `[]`; pass `new \stdClass()` where `{}` is meant.
     *
     * @param int $flags extra json_encode flags
     * @throws \JsonException for values JSON cannot carry (NAN, INF, resources, invalid UTF-8, too deep).
     */
    public static function encode(mixed $value, int $flags = 0): string
    {
        return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR | $flags);
    }
}
