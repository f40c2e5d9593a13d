<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\MemoryNonceStore;
use Durable\Serve;
use Durable\Signature;
use Durable\SignatureV2;
use Durable\Step;
use PHPUnit\Framework\TestCase;

/**
 * The served endpoint: signatures v2 on every invoke (fresh, unseen, the engine's, no r), routing,
 * malformed input, answers signed v2 for the invoke they answer (and v1).
 */
final class ServeTest extends TestCase
{
    private const NOW = 1767225600123;

    private MemoryNonceStore $nonces;

    /** How often the step of hello() ran. */
    private int $charged = 0;

    protected function setUp(): void
    {
        $this->nonces = new MemoryNonceStore();
        $this->charged = 0;
    }

    private function hello(): DurableFunction
    {
        return new DurableFunction(
            id: 'hello',
            trigger: ['event' => 'demo.hello'],
            handler: fn (array $event, Step $step) => $step->run('greet', function () use ($event) {
                $this->charged++; // the side effect a replay must not repeat
                return "hi {$event['data']['name']} ☃ a/b";
            }),
        );
    }

    /**
     * Dispatch with the given signature headers ('sign': a fresh, valid v2 invoke signature) at NOW;
     * check the answer is signed v2 for that invoke once it was accepted (v2 without r before), and v1.
     *
     * @param array<string, string>|string|null $signature
     * @return array{status: int, headers: array<string, string>, body: string, json: mixed}
     */
    private function dispatch(string $body, array|string|null $signature = 'sign', string $method = 'POST', ?string $fallback = null, string $key = Support::KEY): array
    {
        $nonce = SignatureV2::nonce();
        $signature = $signature === 'sign' ? Support::invokeHeaders($body, self::NOW, $nonce) : $signature;
        $response = Serve::dispatch([$this->hello()], $key, $body, $signature, $method, clock: fn () => self::NOW, signingKeyFallback: $fallback, nonceStore: $this->nonces);
        $this->assertSame('application/json', $response['headers']['content-type']);
        $this->assertSame((string) strlen($response['body']), $response['headers']['content-length']);
        $accepted = !in_array($response['status'], [401, 405, 413], true) && $method === 'POST';
        $sent = is_array($signature) ? (array_change_key_case($signature)[SignatureV2::HEADER] ?? null) : $signature;
        $replyTo = $accepted ? SignatureV2::parse(is_array($sent) ? $sent[0] : $sent)['n'] : '';
        Support::assertSignedAnswer($response, $replyTo, self::NOW, $key);
        return $response + ['json' => json_decode($response['body'], true)];
    }

    public function testAValidInvokeRunsTheStepAndAnswersCompactUnescapedJson(): void
    {
        $response = $this->dispatch(Support::body('hello', ['name' => 'Ada']));
        $this->assertSame(200, $response['status']);
        // Checkpointing is on by default: the step and the handler's return in one answer.
        $this->assertSame('{"op":"checkpoint","steps":[{"id":"greet","data":"hi Ada ☃ a/b"}],"then":{"op":"done","data":"hi Ada ☃ a/b"}}', $response['body']);
        $this->assertSame(1, $this->charged);
    }

    public function testTheAnswerIsBoundToItsInvokeByR(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $first = Support::invokeHeaders($body, self::NOW, 'invoke-nonce-0000000000000001');
        $second = Support::invokeHeaders($body, self::NOW, 'invoke-nonce-0000000000000002');
        $a = Serve::dispatch([$this->hello()], Support::KEY, $body, $first, clock: fn () => self::NOW, nonceStore: $this->nonces);
        $b = Serve::dispatch([$this->hello()], Support::KEY, $body, $second, clock: fn () => self::NOW, nonceStore: $this->nonces);
        $this->assertSame('invoke-nonce-0000000000000001', SignatureV2::parse($a['headers'][SignatureV2::HEADER])['r']);
        $this->assertSame('invoke-nonce-0000000000000002', SignatureV2::parse($b['headers'][SignatureV2::HEADER])['r']);
        $this->assertSame($a['body'], $b['body'], 'the same op');
        $this->assertNotSame(SignatureV2::parse($a['headers'][SignatureV2::HEADER])['n'], SignatureV2::parse($b['headers'][SignatureV2::HEADER])['n'], 'a fresh nonce per answer');
        // the first answer, moved onto the second invoke, is refused by its receiver
        $this->expectException(\Durable\SignatureError::class);
        $this->expectExceptionMessage('answers another request');
        SignatureV2::verify($a['body'], [Support::KEY], $a['headers'][SignatureV2::HEADER], SignatureV2::APP, 'invoke-nonce-0000000000000002', self::NOW);
    }

    public function testAReplayedInvokeIs401AndTheHandlerDoesNotRunAgain(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $captured = Support::invokeHeaders($body, self::NOW);
        $this->assertSame(200, $this->dispatch($body, $captured)['status']);
        foreach ([1, 2, 3] as $replay) {
            $response = $this->dispatch($body, $captured);
            $this->assertSame(401, $response['status']);
            $this->assertMatchesRegularExpression('/^x-durable-signature-v2: replay: nonce [0-9a-f]{32} was already accepted; the handler was not run$/', $response['json']['error']);
        }
        $this->assertSame(1, $this->charged, 'the charge ran once');
    }

    public function testAStaleInvokeIs401(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        foreach ([-SignatureV2::MAX_SKEW_MS - 1 => 'ms old', SignatureV2::MAX_SKEW_MS + 1 => 'ms ahead'] as $offset => $words) {
            $response = $this->dispatch($body, Support::invokeHeaders($body, self::NOW + $offset));
            $this->assertSame(401, $response['status']);
            $this->assertStringStartsWith('x-durable-signature-v2: stale: t is 300001 ' . $words, $response['json']['error']);
        }
        $this->assertSame(200, $this->dispatch($body, Support::invokeHeaders($body, self::NOW - SignatureV2::MAX_SKEW_MS))['status'], '5 minutes is still fresh');
        $this->assertSame(1, $this->charged);
    }

    public function testAMessageSignedForTheAppDirectionIs401(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $response = $this->dispatch($body, Support::invokeHeaders($body, self::NOW, sender: SignatureV2::APP));
        $this->assertSame(401, $response['status']);
        $this->assertSame(['error' => 'x-durable-signature-v2: wrong signature (no signing key matches)'], $response['json']);
        $this->assertSame(0, $this->charged);
    }

    public function testAnAnswerPostedAsAnInvokeIs401(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $response = $this->dispatch($body, Support::invokeHeaders($body, self::NOW, r: SignatureV2::nonce()));
        $this->assertSame(401, $response['status']);
        $this->assertStringStartsWith('x-durable-signature-v2: a request must not carry r=', $response['json']['error']);
        $this->assertSame(0, $this->charged);
    }

    public function testAV1OnlyInvokeIs401SayingV2IsRequired(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        foreach ([[Signature::HEADER => Signature::sign($body, Support::KEY)], Signature::sign($body, Support::KEY)] as $v1) {
            $response = $this->dispatch($body, $v1);
            $this->assertSame(401, $response['status']);
            $this->assertSame(['error' => 'this SDK requires signatures v2: the invoke carries only x-durable-signature (v1), without x-durable-signature-v2'], $response['json']);
        }
        $this->assertSame(0, $this->charged);
    }

    public function testMissingSignatureIs401(): void
    {
        foreach ([null, '', [], [SignatureV2::HEADER => '']] as $missing) {
            $response = $this->dispatch(Support::body('hello', ['name' => 'Ada']), $missing);
            $this->assertSame(401, $response['status']);
            $this->assertSame(['error' => 'missing x-durable-signature-v2'], $response['json']);
        }
    }

    /** @return iterable<string, array{callable(string): array<string, string>, string}> */
    public static function wrong(): iterable
    {
        $mac = 'x-durable-signature-v2: wrong signature (no signing key matches)';
        yield 'wrong key' => [fn (string $body) => Support::invokeHeaders($body, self::NOW, key: 'wrong-key'), $mac];
        yield 'tampered body' => [fn (string $body) => Support::invokeHeaders($body . ' ', self::NOW), $mac];
        yield 'tampered t' => [fn (string $body) => [SignatureV2::HEADER => preg_replace('/^t=\d+/', 't=' . (self::NOW + 1), Support::invokeHeaders($body, self::NOW)[SignatureV2::HEADER])], $mac];
        yield 'nonsense' => [fn (string $body) => [SignatureV2::HEADER => 'nonsense'], "x-durable-signature-v2: malformed: unexpected part 'nonsense' (expected t=, n=, r=, s=)"];
        yield 'no s' => [fn (string $body) => [SignatureV2::HEADER => 't=1,n=0123456789abcdef'], 'x-durable-signature-v2: malformed: no s= part'];
    }

    /** @dataProvider wrong */
    public function testWrongSignatureIs401(callable $headers, string $error): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $response = $this->dispatch($body, $headers($body));
        $this->assertSame(401, $response['status']);
        $this->assertSame(['error' => $error], $response['json']);
        $this->assertSame(0, $this->charged);
    }

    public function testTheFallbackKeyIsAcceptedWhileRotatingAndAnswersUseThePrimary(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $old = fn () => Support::invokeHeaders($body, self::NOW, key: 'old-key');
        $this->assertSame(401, $this->dispatch($body, $old(), key: 'new-key')['status'], 'without the fallback');
        $response = $this->dispatch($body, $old(), fallback: 'old-key', key: 'new-key'); // the answer is checked under new-key
        $this->assertSame(200, $response['status']);
        $this->assertSame(200, $this->dispatch($body, Support::invokeHeaders($body, self::NOW, key: 'new-key'), fallback: 'old-key', key: 'new-key')['status']);
    }

    public function testAnUnusableNonceStoreIs500AndTheHandlerDoesNotRun(): void
    {
        $dir = Support::tempDir('open-nonces');
        chmod($dir, 0777); // others could delete entries: refused rather than trusted
        try {
            $body = Support::body('hello', ['name' => 'Ada']);
            $nonce = SignatureV2::nonce();
            $response = Serve::dispatch([$this->hello()], Support::KEY, $body, Support::invokeHeaders($body, self::NOW, $nonce), clock: fn () => self::NOW, nonceStore: new \Durable\FileNonceStore($dir));
            $this->assertSame(500, $response['status']);
            $this->assertStringStartsWith("nonce store: $dir must be owned by", json_decode($response['body'], true)['error']);
            Support::assertSignedAnswer($response, $nonce, self::NOW);
            $this->assertSame(0, $this->charged);
        } finally {
            Support::removeDir($dir);
        }
    }

    public function testHeadersAreFoundInAnyCaseAndAsLists(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        $headers = Support::invokeHeaders($body, self::NOW);
        $framework = ['X-Durable-Signature-V2' => [$headers[SignatureV2::HEADER]], 'Content-Type' => ['application/json']];
        $this->assertSame(200, $this->dispatch($body, $framework)['status']);
        $this->assertSame(200, $this->dispatch($body, Support::invokeHeaders($body, self::NOW)[SignatureV2::HEADER])['status'], 'the v2 value alone');
    }

    public function testUnknownFunctionIs404(): void
    {
        $response = $this->dispatch(Support::body('nope'));
        $this->assertSame(404, $response['status']);
        $this->assertSame(['error' => "unknown function 'nope'"], $response['json']);
    }

    /** @return iterable<string, array{string, string}> */
    public static function malformed(): iterable
    {
        yield 'not JSON' => ['{"functionId":', 'malformed invoke: Syntax error'];
        yield 'empty body' => ['', 'malformed invoke: Syntax error'];
        yield 'a list' => ['[1,2]', 'malformed invoke: the body must be a JSON object'];
        yield 'no functionId' => ['{"event":{}}', 'malformed invoke: functionId must be a string'];
        yield 'event not an object' => ['{"functionId":"hello","event":"x"}', 'malformed invoke: event must be an object'];
        yield 'steps a list' => ['{"functionId":"hello","event":{},"steps":[1]}', 'malformed invoke: steps must be an object'];
        yield 'step without type' => ['{"functionId":"hello","event":{},"steps":{"a":{"data":1}}}', 'malformed invoke: steps.a must be an object with type run, sleep, wait, invoke or send'];
        yield 'step of unknown type' => ['{"functionId":"hello","event":{},"steps":{"a":{"type":"nap"}}}', 'malformed invoke: steps.a must be an object with type run, sleep, wait, invoke or send'];
    }

    /** @dataProvider malformed */
    public function testMalformedBodyIs400(string $body, string $error): void
    {
        $response = $this->dispatch($body);
        $this->assertSame(400, $response['status']);
        $this->assertSame(['error' => $error], $response['json']);
    }

    public function testSignatureIsCheckedBeforeTheBodyIsParsed(): void
    {
        $this->assertSame(401, $this->dispatch('{"functionId":', null)['status']);
    }

    public function testOversizedBodyIs413(): void
    {
        $response = $this->dispatch(str_repeat(' ', Serve::MAX_BODY + 1));
        $this->assertSame(413, $response['status']);
    }

    public function testGetListsFunctionsAndOtherMethodsAre405(): void
    {
        $this->assertSame(['functions' => ['hello']], $this->dispatch('', null, 'GET')['json']);
        $this->assertSame(405, $this->dispatch('', null, 'PUT')['status']);
    }

    public function testStepsMayBeOmittedAndEmptyEventDataWorks(): void
    {
        $response = $this->dispatch('{"runId":"r","functionId":"hello","attempt":1,"event":{"id":"e","name":"demo.hello","data":{"name":"Bo"},"ts":1}}');
        $this->assertSame(['op' => 'checkpoint', 'steps' => [['id' => 'greet', 'data' => 'hi Bo ☃ a/b']], 'then' => ['op' => 'done', 'data' => 'hi Bo ☃ a/b']], $response['json']);
    }

    public function testFunctionListAndKeyAreChecked(): void
    {
        try {
            Serve::dispatch([$this->hello(), $this->hello()], Support::KEY, '', null);
            $this->fail('duplicate ids must be refused');
        } catch (\InvalidArgumentException $e) {
            $this->assertSame("duplicate function id 'hello'", $e->getMessage());
        }
        $this->expectException(\InvalidArgumentException::class);
        Serve::dispatch([$this->hello()], '', '', null);
    }

    public function testHandleReadsTheRequestAndWritesTheSignedResponse(): void
    {
        $nonces = Support::tempDir('nonces');
        [$server, $port] = Server::start(__DIR__ . '/fixtures/serve_router.php', ['DURABLE_SIGNING_KEY' => Support::KEY, 'DURABLE_NONCE_DIR' => $nonces]);
        try {
            $body = Support::body('hello', ['name' => 'Ada']);
            $nonce = SignatureV2::nonce();
            $now = (int) floor(microtime(true) * 1000);
            [$status, $headers, $answer] = Server::post("http://127.0.0.1:$port/api/durable", $body, Support::invokeHeaders($body, $now, $nonce));
            $this->assertSame(200, $status);
            $this->assertSame('{"op":"checkpoint","steps":[{"id":"greet","data":"hi Ada ☃ a/b"}],"then":{"op":"done","data":"hi Ada ☃ a/b"}}', $answer, 'stray output of user code is not in the body');
            Support::assertSignedAnswer(['headers' => $headers, 'body' => $answer, 'status' => $status], $nonce, $now);
            [$status, , $answer] = Server::post("http://127.0.0.1:$port/api/durable", $body, []);
            $this->assertSame(401, $status);
            $this->assertSame('{"error":"missing x-durable-signature-v2"}', $answer);
            [$status, , $answer] = Server::post("http://127.0.0.1:$port/api/durable", $body, [Signature::HEADER => Signature::sign($body, Support::KEY)]);
            $this->assertSame(401, $status);
            $this->assertStringContainsString('this SDK requires signatures v2', $answer);
        } finally {
            Server::stop($server);
            Support::removeDir($nonces);
        }
    }

    /**
     * A captured invoke replayed at a server of 4 worker processes, sequentially and then 8 copies at
     * once: the step's side effect happens once, every copy is refused with a replay error.
     */
    public function testHandleRefusesReplaysAcrossWorkerProcesses(): void
    {
        $nonces = Support::tempDir('nonces');
        $effects = (string) tempnam(sys_get_temp_dir(), 'side-effects');
        [$server, $port] = Server::start(__DIR__ . '/fixtures/serve_router.php', [
            'DURABLE_SIGNING_KEY' => Support::KEY, 'DURABLE_NONCE_DIR' => $nonces, 'SIDE_EFFECTS' => $effects, 'PHP_CLI_SERVER_WORKERS' => '4',
        ]);
        try {
            $body = Support::body('hello', ['name' => 'Ada']);
            $captured = Support::invokeHeaders($body);
            [$status] = Server::post("http://127.0.0.1:$port/", $body, $captured);
            $this->assertSame(200, $status);
            [$status, , $answer] = Server::post("http://127.0.0.1:$port/", $body, $captured);
            $this->assertSame(401, $status);
            $this->assertStringContainsString('replay', json_decode($answer, true)['error']);

            $fresh = Support::invokeHeaders($body); // a new invoke, sent 8 times at once
            $statuses = Server::postConcurrently("http://127.0.0.1:$port/", $body, $fresh, 8);
            sort($statuses);
            $this->assertSame([200, 401, 401, 401, 401, 401, 401, 401], $statuses, 'exactly one copy is accepted');
            $this->assertSame("charged Ada\ncharged Ada\n", file_get_contents($effects), 'once per distinct invoke');
        } finally {
            Server::stop($server);
            Support::removeDir($nonces);
            @unlink($effects);
        }
    }
}
