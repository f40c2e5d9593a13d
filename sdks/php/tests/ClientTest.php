<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\Client;
use Durable\DurableFunction;
use Durable\Signature;
use Durable\SignatureV2;
use PHPUnit\Framework\TestCase;

/**
 * Client against a fake engine on `php -S` (tests/fixtures/fake_engine.php) that checks signatures:
 * requests signed v2 (and v1), answers verified v2 (the engine's, fresh, r = the request's nonce) or
 * v1 alone from an older engine.
 */
final class ClientTest extends TestCase
{
    private const APP = 'app-123';

    /** @var resource */
    private static $server;
    private static int $port;
    private static string $log;

    public static function setUpBeforeClass(): void
    {
        self::$log = (string) tempnam(sys_get_temp_dir(), 'fake-engine');
        [self::$server, self::$port] = Server::start(__DIR__ . '/fixtures/fake_engine.php', [
            'DURABLE_SIGNING_KEY' => Support::KEY, 'DURABLE_APP_ID' => self::APP, 'FAKE_ENGINE_LOG' => self::$log,
            'DURABLE_SIGNING_KEY_OLD' => 'old-key',
        ]);
    }

    public static function tearDownAfterClass(): void
    {
        Server::stop(self::$server);
        @unlink(self::$log);
    }

    protected function setUp(): void
    {
        file_put_contents(self::$log, '');
    }

    private function client(string $mode = '', string $key = Support::KEY, ?string $appUrl = 'http://localhost:4002/api/durable', ?string $fallback = null): Client
    {
        $prefix = $mode === '' ? '' : "/mode/$mode";
        return new Client('http://127.0.0.1:' . self::$port . "$prefix/", self::APP, $key, $appUrl, signingKeyFallback: $fallback);
    }

    /** @return list<array<string, mixed>> the requests the fake engine received */
    private function requests(): array
    {
        $lines = array_filter(explode("\n", (string) file_get_contents(self::$log)));
        return array_map(fn (string $line) => json_decode($line, true), array_values($lines));
    }

    public function testSyncPostsTheSignedFunctionSet(): void
    {
        $hello = new DurableFunction(id: 'hello', trigger: ['event' => 'demo.hello'], handler: fn () => null, concurrency: ['limit' => 2, 'key' => 'tenantId']);
        $nightly = new DurableFunction(id: 'nightly', trigger: ['cron' => '0 3 * * *'], handler: fn () => null, throttle: ['limit' => 1, 'period' => '1h30m']);
        $this->assertSame(['synced' => 2], $this->client()->sync([$hello, $nightly]));
        [$request] = $this->requests();
        $this->assertSame(['method' => 'POST', 'path' => '/fn/sync', 'app' => self::APP, 'contentType' => 'application/json'], array_diff_key($request, ['body' => 1, 'v2' => 1, 'v1' => 1]));
        $this->assertSame(
            '{"url":"http://localhost:4002/api/durable","functions":[{"id":"hello","trigger":{"event":"demo.hello"},"concurrency":{"limit":2,"key":"tenantId"}},'
            . '{"id":"nightly","trigger":{"cron":"0 3 * * *"},"throttle":{"limit":1,"period":"1h30m"}}]}',
            $request['body'],
        );
    }

    public function testSyncSendsTheFailureHandlerAsAFunctionWithoutTrigger(): void
    {
        $ship = new DurableFunction(
            id: 'ship',
            trigger: ['event' => 'order.paid'],
            handler: fn () => null,
            name: 'Ship',
            retries: 1,
            onFailure: fn () => null,
            cancelOn: [['event' => 'order.cancelled', 'match' => 'orderId', 'timeout' => '7d']],
            idempotency: 'orderId',
            singleton: ['key' => 'userId', 'mode' => 'cancel'],
        );
        $child = new DurableFunction(id: 'charge', handler: fn () => null);
        $this->assertSame(['synced' => 3], $this->client()->sync([$ship, $child]));
        $this->assertSame(
            '{"url":"http://localhost:4002/api/durable","functions":['
            . '{"id":"ship","name":"Ship","trigger":{"event":"order.paid"},"retries":1,"cancelOn":[{"event":"order.cancelled","match":"orderId","timeout":"7d"}],'
            . '"idempotency":"orderId","singleton":{"key":"userId","mode":"cancel"},"onFailure":"ship:failure"},'
            . '{"id":"ship:failure","name":"Ship (failure)","trigger":null},'
            . '{"id":"charge","trigger":null}]}',
            $this->requests()[0]['body'],
        );
    }

    public function testSyncNeverSendsTheCheckpointOption(): void
    {
        $bodies = [];
        foreach ([true, false, ['maxSteps' => 5, 'maxBytes' => 10, 'maxMs' => 20]] as $checkpoint) {
            file_put_contents(self::$log, '');
            $hello = new DurableFunction(id: 'hello', trigger: ['event' => 'demo.hello'], handler: fn () => null, onFailure: fn () => null, checkpoint: $checkpoint);
            $this->client()->sync([$hello]);
            $bodies[] = $this->requests()[0]['body'];
        }
        $this->assertSame(
            '{"url":"http://localhost:4002/api/durable","functions":[{"id":"hello","trigger":{"event":"demo.hello"},"onFailure":"hello:failure"},'
            . '{"id":"hello:failure","name":"hello (failure)","trigger":null}]}',
            $bodies[0],
        );
        $this->assertSame([$bodies[0], $bodies[0], $bodies[0]], $bodies);
    }

    public function testSyncOfNoFunctionsSendsAnEmptyList(): void
    {
        $this->client()->sync([]);
        $this->assertSame('{"url":"http://localhost:4002/api/durable","functions":[]}', $this->requests()[0]['body']);
    }

    public function testSyncNeedsTheAppUrl(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->client(appUrl: null)->sync([]);
    }

    public function testSendPostsOneEventWithDataAsAnObject(): void
    {
        $this->assertSame(['evt-0'], $this->client()->send('user.created', ['id' => 'u1', 'name' => 'Zoë', 'url' => 'a/b']));
        $this->assertSame(['evt-0'], $this->client()->send('tick'));
        $this->assertSame(['evt-0'], $this->client()->send('user.created', ['id' => 'u2'], 'my-id', 1767225600000));
        $bodies = array_column($this->requests(), 'body');
        $this->assertSame([
            '{"name":"user.created","data":{"id":"u1","name":"Zoë","url":"a/b"}}',
            '{"name":"tick","data":{}}',
            '{"name":"user.created","data":{"id":"u2"},"id":"my-id","ts":1767225600000}',
        ], $bodies);
        $this->assertSame(['/e'], array_unique(array_column($this->requests(), 'path')));
    }

    public function testSendManyPostsAList(): void
    {
        $ids = $this->client()->sendMany([['name' => 'a'], ['name' => 'b', 'data' => ['n' => 1], 'id' => 'x']]);
        $this->assertSame(['evt-0', 'evt-1'], $ids);
        $this->assertSame('[{"name":"a","data":{}},{"name":"b","data":{"n":1},"id":"x"}]', $this->requests()[0]['body']);
    }

    public function testEventsMayCarryAnIdempotencyKey(): void
    {
        $this->client()->send('order.paid', ['orderId' => 'o1'], idempotencyKey: 'pay-o1');
        $this->client()->sendMany([['name' => 'a', 'idempotencyKey' => 'k-a'], ['name' => 'b', 'idempotencyKey' => null]]);
        $this->assertSame([
            '{"name":"order.paid","data":{"orderId":"o1"},"idempotencyKey":"pay-o1"}',
            '[{"name":"a","data":{},"idempotencyKey":"k-a"},{"name":"b","data":{}}]',
        ], array_column($this->requests(), 'body'));
        foreach (['', str_repeat('k', 257)] as $key) {
            try {
                $this->client()->send('a', idempotencyKey: $key);
                $this->fail('an invalid idempotencyKey was sent');
            } catch (\InvalidArgumentException $e) {
                $this->assertSame("event 'a': idempotencyKey must be a non-empty string of at most 256 characters", $e->getMessage());
            }
        }
        $this->assertCount(2, $this->requests());
    }

    public function testEventsAreCheckedBeforeSending(): void
    {
        foreach ([fn (Client $c) => $c->send(''), fn (Client $c) => $c->send('a', [1, 2]), fn (Client $c) => $c->sendMany([['data' => []]])] as $call) {
            try {
                $call($this->client());
                $this->fail('an invalid event was sent');
            } catch (\InvalidArgumentException) {
            }
        }
        $this->assertSame([], $this->requests());
    }

    public function testRequestsAreSignedV2AsTheAppWithAFreshNonceAndV1(): void
    {
        $this->client()->send('a');
        $this->client()->send('a');
        $now = (int) floor(microtime(true) * 1000);
        $nonces = [];
        foreach ($this->requests() as $request) {
            $parts = SignatureV2::verify($request['body'], [Support::KEY], $request['v2'], SignatureV2::APP, null, $now);
            $this->assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $parts['n']);
            $this->assertLessThan(5_000, abs($now - $parts['t']), 't is the clock, in ms');
            $this->assertSame(Signature::sign($request['body'], Support::KEY), $request['v1']);
            $nonces[] = $parts['n'];
        }
        $this->assertCount(2, array_unique($nonces), 'one nonce per request');
    }

    /** @return iterable<string, array{string, string, int}> */
    public static function failures(): iterable
    {
        yield 'engine error' => ['error', "POST /e: 400 function 'x': throttle.period: invalid duration 'abc'", 400];
        yield 'engine error object' => ['error-object', 'POST /e: 413 body too large', 413];
        yield 'unsigned answer' => ['unsigned', 'POST /e: the answer has a missing x-durable-signature-v2 and x-durable-signature', 200];
        yield 'wrongly signed answer' => ['badsig', 'POST /e: the answer is refused: x-durable-signature-v2: wrong signature (no signing key matches)', 200];
        yield 'an answer to another request' => ['wrongr', 'POST /e: the answer is refused: x-durable-signature-v2: the answer answers another request (r= is not the nonce sent)', 200];
        yield 'an answer without r' => ['nor', 'POST /e: the answer is refused: x-durable-signature-v2: the answer carries no r=', 200];
        yield 'a stale answer' => ['stale', '~^POST /e: the answer is refused: x-durable-signature-v2: stale: t is 600\d{3} ms old \(at most 300000 ms either way\)$~', 200];
        yield 'signed as the app' => ['appsender', 'POST /e: the answer is refused: x-durable-signature-v2: wrong signature (no signing key matches)', 200];
        yield 'signed with another key' => ['oldkey', 'POST /e: the answer is refused: x-durable-signature-v2: wrong signature (no signing key matches)', 200];
        yield 'wrong v1 from an older engine' => ['v1bad', 'POST /e: the answer has a wrong x-durable-signature', 200];
        yield 'not JSON' => ['notjson', 'POST /e: the answer is not a JSON object: hello', 200];
        yield 'no ids' => ['noids', 'POST /e: unexpected answer from the engine: {"nope":1}', 0];
    }

    /** @dataProvider failures */
    public function testFailuresThrowRuntimeException(string $mode, string $message, int $code): void
    {
        try {
            $this->client($mode)->send('demo.hello');
        } catch (\RuntimeException $e) {
            str_starts_with($message, '~') ? $this->assertMatchesRegularExpression($message, $e->getMessage()) : $this->assertSame($message, $e->getMessage());
            $this->assertSame($code, $e->getCode());
            return;
        }
        $this->fail('no exception');
    }

    public function testAnOlderEngineAnsweringV1AloneIsAccepted(): void
    {
        $this->assertSame(['evt-0'], $this->client('v1only')->send('demo.hello'));
    }

    public function testTheFallbackKeyVerifiesAnswersWhileRotating(): void
    {
        $this->assertSame(['evt-0'], $this->client('oldkey', fallback: 'old-key')->send('demo.hello'));
    }

    public function testRequestsAreStampedWithTheClientsClock(): void
    {
        $late = (int) floor(microtime(true) * 1000) + 301_000; // 5 min ahead of the engine's clock
        $client = new Client('http://127.0.0.1:' . self::$port, self::APP, Support::KEY, clock: fn () => $late);
        $this->expectException(\RuntimeException::class);
        $this->expectExceptionMessage('POST /e: 401 wrong x-durable-signature-v2'); // the engine finds it stale
        $client->send('demo.hello');
    }

    public function testAWrongKeyIsRefusedByTheEngine(): void
    {
        $this->expectException(\RuntimeException::class);
        $this->expectExceptionMessage('POST /e: 401 wrong x-durable-signature-v2');
        $this->client(key: 'wrong-key')->send('demo.hello');
    }

    public function testAnUnreachableEngine(): void
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $address = stream_socket_get_name($probe, false);
        fclose($probe);
        $client = new Client("http://$address", self::APP, Support::KEY, timeout: 2);
        $this->expectException(\RuntimeException::class);
        $this->expectExceptionMessageMatches('#^POST /e: cannot reach the engine at http://127\.0\.0\.1:\d+: #');
        $client->send('demo.hello');
    }

    public function testTheFakeEngineChecksSignaturesForReal(): void
    {
        $body = '{"name":"x","data":{}}';
        $url = 'http://127.0.0.1:' . self::$port . '/e';
        [$status] = Server::post($url, $body, Support::invokeHeaders($body, key: 'other', sender: SignatureV2::APP) + ['x-durable-app' => self::APP]);
        $this->assertSame(401, $status);
        [$status, , $answer] = Server::post($url, $body, [Signature::HEADER => Signature::sign($body, Support::KEY), 'x-durable-app' => self::APP]);
        $this->assertSame(401, $status);
        $this->assertStringContainsString('requires signatures v2', $answer);
        [$status] = Server::post($url, $body, Support::invokeHeaders($body, sender: SignatureV2::APP) + ['x-durable-app' => self::APP]);
        $this->assertSame(200, $status);
    }
}
