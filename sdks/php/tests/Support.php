<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\MemoryNonceStore;
use Durable\Serve;
use Durable\Signature;
use Durable\SignatureV2;
use PHPUnit\Framework\Assert;

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
     * The headers of an invoke as the engine signs it: v2 (sender engine, no r) at $t with nonce $n
     * (fresh when null), and v1.
     *
     * @return array<string, string>
     */
    public static function invokeHeaders(string $body, ?int $t = null, ?string $n = null, string $key = self::KEY, string $sender = SignatureV2::ENGINE, string $r = ''): array
    {
        $t ??= (int) floor(microtime(true) * 1000);
        return [
            SignatureV2::HEADER => SignatureV2::sign($body, $key, $sender, $t, $n ?? SignatureV2::nonce(), $r),
            Signature::HEADER => Signature::sign($body, $key),
        ];
    }

    /**
     * Check that $response is signed v2 as the app's answer to the invoke with nonce $replyTo, and v1.
     *
     * @param array{status: int, headers: array<string, string>, body: string} $response
     */
    public static function assertSignedAnswer(array $response, string $replyTo, int $now, string $key = self::KEY): void
    {
        $headers = $response['headers'];
        Assert::assertArrayHasKey(SignatureV2::HEADER, $headers, 'every answer is signed v2');
        $parts = SignatureV2::verify($response['body'], [$key], $headers[SignatureV2::HEADER], SignatureV2::APP, $replyTo === '' ? null : $replyTo, $now);
        Assert::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $parts['n'], 'the nonce is 16 random bytes in hex');
        Assert::assertSame(Signature::sign($response['body'], $key), $headers[Signature::HEADER], 'and v1, for an engine in compat mode');
    }

    /**
     * Dispatch a signed invoke (a fresh nonce, t = $now) and return the decoded op, after checking the
     * answer is 200 and signed for that invoke.
     *
     * @return array<string, mixed>
     */
    public static function invoke(array $functions, string $body, ?int $now = null): array
    {
        $now ??= (int) floor(microtime(true) * 1000);
        $nonce = SignatureV2::nonce();
        $response = Serve::dispatch($functions, self::KEY, $body, self::invokeHeaders($body, $now, $nonce), clock: fn () => $now, nonceStore: new MemoryNonceStore());
        Assert::assertSame(200, $response['status'], $response['body']);
        self::assertSignedAnswer($response, $nonce, $now);
        return json_decode($response['body'], true, 512, JSON_THROW_ON_ERROR);
    }

    /** A new empty directory, mode 0700. */
    public static function tempDir(string $what): string
    {
        $dir = sys_get_temp_dir() . "/durable-php-test-$what-" . bin2hex(random_bytes(6));
        mkdir($dir, 0700);
        return $dir;
    }

    /** Remove a directory made by tempDir and the files in it. */
    public static function removeDir(string $dir): void
    {
        foreach (glob("$dir/{,.}[!.]*", GLOB_BRACE) ?: [] as $file) {
            @unlink($file);
        }
        @rmdir($dir);
    }

    /** An invoke body for $functionId with the given event data and memoized steps. */
    public static function body(string $functionId, array|\stdClass $data = new \stdClass(), array|\stdClass $steps = new \stdClass()): string
    {
        $event = ['id' => 'evt-1', 'name' => 'demo.test', 'data' => $data, 'ts' => 1767225600000];
        return json_encode(['runId' => 'run-1', 'functionId' => $functionId, 'attempt' => 1, 'event' => $event, 'steps' => $steps], JSON_THROW_ON_ERROR);
    }
}
