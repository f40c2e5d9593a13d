<?php

declare(strict_types=1);

namespace Durable;

/**
 * Durations ('500ms', '90s', '5m', '12h', '30d', '1w', '1h30m' or integer milliseconds) and timestamps.
 */
final class Duration
{
    /** The longest duration the engine accepts: 365 days, in milliseconds. */
    public const MAX_MS = 365 * 86_400_000;

    private const PATTERN = '/^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/D';
    private const UNIT_MS = [604_800_000, 86_400_000, 3_600_000, 60_000, 1_000, 1];

    /**
     * Milliseconds in $value: a string of parts largest unit first ('1w2d3h4m5s6ms') or a non-negative int.
     *
     * @throws \InvalidArgumentException "invalid duration 'abc'" (the caller adds the field).
     */
    public static function toMs(mixed $value): int
    {
        $ms = null;
        if (is_int($value) && $value >= 0) {
            $ms = $value;
        } elseif (is_string($value) && $value !== '' && preg_match(self::PATTERN, $value, $parts)) {
            $ms = 0;
            foreach (array_slice($parts, 1) as $i => $count) {
                $ms += (int) $count * self::UNIT_MS[$i];
            }
        }
        if ($ms === null || $ms > self::MAX_MS) {
            $shown = is_string($value) ? "'$value'" : var_export($value, true);
            $why = $ms === null ? '' : ' (at most 365d)';
            throw new \InvalidArgumentException("invalid duration $shown$why");
        }
        return $ms;
    }

    /** Epoch milliseconds as ISO 8601 UTC with milliseconds: '2026-07-05T09:00:00.000Z'. */
    public static function iso(int $epochMs): string
    {
        $seconds = intdiv($epochMs, 1000);
        return gmdate('Y-m-d\TH:i:s', $seconds) . sprintf('.%03dZ', $epochMs - $seconds * 1000);
    }

    /** The current time in epoch milliseconds (the SDK clock unless a test passes its own). */
    public static function nowMs(): int
    {
        return (int) floor(microtime(true) * 1000);
    }
}
