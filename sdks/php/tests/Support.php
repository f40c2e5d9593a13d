<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\Serve;
use Durable\Signature;

/** Helpers shared by the tests. */
final class Support
{
    public const KEY = 'signkey-test-1';

    /** JSON text with object keys sorted, so two JSON values compare as strings ({} ≠ [], true ≠ 1). */
    public static function canonical(string $json): string
    {
        $sort = static function (mixed $value) use (&$sort): mixed {
            if ($value instanceof \stdClass) {
                $fields = get_object_vars($value);
                ksort($fields, SORT_STRING);
                return (object) array_map($sort, $fields);
            }
            return is_array($value) ? array_map($sort, $value) : $value;
        };
        $decoded = json_decode($json, false, 512, JSON_THROW_ON_ERROR);
        return json_encode($sort($decoded), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR);
    }

    /**
     * Dispatch a signed invoke and return the decoded op, after checking the answer is 200 and signed.
     *
     * @return array<string, mixed>
     */
    public static function invoke(array $functions, string $body, ?int $now = null): array
    {
        $response = Serve::dispatch($functions, self::KEY, $body, Signature::sign($body, self::KEY), clock: $now === null ? null : fn () => $now);
        \PHPUnit\Framework\Assert::assertSame(200, $response['status'], $response['body']);
        \PHPUnit\Framework\Assert::assertSame(Signature::sign($response['body'], self::KEY), $response['headers']['x-durable-signature']);
        return json_decode($response['body'], true, 512, JSON_THROW_ON_ERROR);
    }

    /** An invoke body for $functionId with the given event data and memoized steps. */
    public static function body(string $functionId, array|\stdClass $data = new \stdClass(), array|\stdClass $steps = new \stdClass()): string
    {
        $event = ['id' => 'evt-1', 'name' => 'demo.test', 'data' => $data, 'ts' => 1767225600000];
        return json_encode(['runId' => 'run-1', 'functionId' => $functionId, 'attempt' => 1, 'event' => $event, 'steps' => $steps], JSON_THROW_ON_ERROR);
    }
}
