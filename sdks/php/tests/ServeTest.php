<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\Serve;
use Durable\Signature;
use Durable\Step;
use PHPUnit\Framework\TestCase;

/** The served endpoint: authentication, routing, malformed input, signed answers. */
final class ServeTest extends TestCase
{
    private function hello(): DurableFunction
    {
        return new DurableFunction(
            id: 'hello',
            trigger: ['event' => 'demo.hello'],
            handler: fn (array $event, Step $step) => $step->run('greet', fn () => "hi {$event['data']['name']} ☃ a/b"),
        );
    }

    /** @return array{status: int, headers: array<string, string>, body: string, json: mixed} */
    private function dispatch(string $body, ?string $signature = 'sign', string $method = 'POST'): array
    {
        $signature = $signature === 'sign' ? Signature::sign($body, Support::KEY) : $signature;
        $response = Serve::dispatch([$this->hello()], Support::KEY, $body, $signature, $method);
        $this->assertSame('application/json', $response['headers']['content-type']);
        $this->assertSame((string) strlen($response['body']), $response['headers']['content-length']);
        $this->assertSame(Signature::sign($response['body'], Support::KEY), $response['headers']['x-durable-signature'], 'every answer is signed');
        return $response + ['json' => json_decode($response['body'], true)];
    }

    public function testGoodSignatureRunsTheStepAndAnswersCompactUnescapedJson(): void
    {
        $response = $this->dispatch(Support::body('hello', ['name' => 'Ada']));
        $this->assertSame(200, $response['status']);
        $this->assertSame('{"op":"step","id":"greet","data":"hi Ada ☃ a/b"}', $response['body']);
    }

    public function testMissingSignatureIs401(): void
    {
        foreach ([null, ''] as $missing) {
            $response = $this->dispatch(Support::body('hello', ['name' => 'Ada']), $missing);
            $this->assertSame(401, $response['status']);
            $this->assertSame(['error' => 'missing x-durable-signature'], $response['json']);
        }
    }

    public function testWrongSignatureIs401(): void
    {
        $body = Support::body('hello', ['name' => 'Ada']);
        foreach ([Signature::sign($body, 'wrong-key'), Signature::sign($body . ' ', Support::KEY), 'nonsense'] as $wrong) {
            $response = $this->dispatch($body, $wrong);
            $this->assertSame(401, $response['status']);
            $this->assertSame(['error' => 'wrong x-durable-signature'], $response['json']);
        }
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
        yield 'step without type' => ['{"functionId":"hello","event":{},"steps":{"a":{"data":1}}}', 'malformed invoke: steps.a must be an object with type run, sleep or wait'];
        yield 'step of unknown type' => ['{"functionId":"hello","event":{},"steps":{"a":{"type":"nap"}}}', 'malformed invoke: steps.a must be an object with type run, sleep or wait'];
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
        $this->assertSame(['op' => 'step', 'id' => 'greet', 'data' => 'hi Bo ☃ a/b'], $response['json']);
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
        $router = __DIR__ . '/fixtures/serve_router.php';
        [$server, $port] = Server::start($router, ['DURABLE_SIGNING_KEY' => Support::KEY]);
        try {
            $body = Support::body('hello', ['name' => 'Ada']);
            [$status, $headers, $answer] = Server::post("http://127.0.0.1:$port/api/durable", $body, [Signature::HEADER => Signature::sign($body, Support::KEY)]);
            $this->assertSame(200, $status);
            $this->assertSame('{"op":"step","id":"greet","data":"hi Ada ☃ a/b"}', $answer, 'stray output of user code is not in the body');
            $this->assertSame(Signature::sign($answer, Support::KEY), $headers[Signature::HEADER]);
            [$status, , $answer] = Server::post("http://127.0.0.1:$port/api/durable", $body, []);
            $this->assertSame(401, $status);
            $this->assertSame('{"error":"missing x-durable-signature"}', $answer);
        } finally {
            Server::stop($server);
        }
    }
}
