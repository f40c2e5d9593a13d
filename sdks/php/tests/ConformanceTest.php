<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\InvokeError;
use Durable\MemoryNonceStore;
use Durable\NonRetryableError;
use Durable\Serve;
use Durable\Signature;
use Durable\SignatureError;
use Durable\SignatureV2;
use Durable\Step;
use PHPUnit\Framework\TestCase;

/**
 * The shared vectors of spec/conformance/: every case of cases.json against the reference handlers
 * (dispatched signed through Serve::dispatch), every v1 signature vector and every v2 `sign` and
 * `verify` vector.
 */
final class ConformanceTest extends TestCase
{
    private const SPEC = __DIR__ . '/../../../spec/conformance';

    /** @return array<string, callable(array, Step): mixed> the reference handlers of the README, same names */
    public static function handlers(): array
    {
        return [
            'three_steps' => function (array $event, Step $step) {
                $a = $step->run('a', fn () => 1);
                $b = $step->run('b', fn () => 'two');
                $c = $step->run('c', fn () => ['three' => 3]);
                return ['a' => $a, 'b' => $b, 'c' => $c];
            },
            'sleep_then_done' => function (array $event, Step $step) {
                $step->sleep('nap', '1h');
                return 'rested';
            },
            'sleep_mixed' => function (array $event, Step $step) {
                $step->sleep('long', '1w2d3h4m5s6ms');
                $step->sleep('short', 1500);
                return 'awake';
            },
            'wait_approval' => function (array $event, Step $step) {
                $approval = $step->waitForEvent('approval', event: 'approval.received', match: ['orderId' => $event['data']['orderId']], timeout: '2d');
                if ($approval === null) {
                    return ['approved' => false];
                }
                return ['approved' => true, 'by' => $approval['data']['by']];
            },
            'wait_any' => fn (array $event, Step $step) => ['got' => $step->waitForEvent('ping', event: 'ping.sent', timeout: 90000)],
            'loop_fetch' => fn (array $event, Step $step) => array_map(fn (int $i) => $step->run('fetch', fn () => $i), [0, 1, 2]),
            'same_id_everywhere' => function (array $event, Step $step) {
                $r = $step->run('x', fn () => 'r');
                $step->sleep('x', '1s');
                $w = $step->waitForEvent('x', event: 'go', timeout: '1m');
                return ['run' => $r, 'wait' => $w];
            },
            'throws' => function (array $event, Step $step) {
                $step->run('explode', fn () => throw new \Exception('boom'));
                return 'unreachable';
            },
            'throws_fatal' => function (array $event, Step $step) {
                $step->run('explode', fn () => throw new NonRetryableError('bad input'));
                return 'unreachable';
            },
            'handler_throws' => function (array $event, Step $step) {
                $step->run('before', fn () => 'ok');
                if ($event['data']['fatal']) {
                    throw new NonRetryableError($event['data']['message']);
                }
                throw new \Exception($event['data']['message']);
            },
            'guarded_step' => function (array $event, Step $step) {
                try {
                    return $step->run('guarded', fn () => $event['data']['fail'] ? throw new \Exception('boom') : 'ok');
                } catch (\Exception $e) {
                    return 'swallowed';
                }
            },
            'non_serialisable' => fn (array $event, Step $step) => $step->run('bad', fn () => NAN),
            'non_serialisable_result' => fn (array $event, Step $step) => STDERR,
            'batch_sum' => function (array $event, Step $step) {
                $total = $step->run('sum', fn () => array_sum(array_map(fn (array $item) => $item['data']['n'], $event['data'])));
                return ['count' => count($event['data']), 'sum' => $total];
            },
            'cron_echo' => fn (array $event, Step $step) => $event['data']['cron'],
            'invoke_child' => function (array $event, Step $step) {
                try {
                    $r = $step->invoke('charge', function: 'charge-card', data: ['orderId' => $event['data']['orderId']], timeout: '1h');
                    return ['charged' => $r];
                } catch (InvokeError $e) {
                    return ['failed' => $e->getMessage(), 'reason' => $e->reason, 'child' => $e->runId];
                }
            },
            'invoke_forever' => fn (array $event, Step $step) => $step->invoke('child', function: 'child-fn', data: []),
            'send_events' => function (array $event, Step $step) {
                $ids = $step->sendEvent('notify', [
                    ['name' => 'order.shipped', 'data' => ['orderId' => $event['data']['orderId']]],
                    ['name' => 'audit', 'data' => [], 'id' => 'audit-' . $event['id']],
                ]);
                $one = $step->sendEvent('single', ['name' => 'ping.sent', 'data' => ['n' => 1]]);
                return ['ids' => $ids, 'one' => $one];
            },
            'parallel_two' => function (array $event, Step $step) {
                [$a, $b] = $step->parallel([fn () => $step->run('a', fn () => 1), fn () => $step->run('b', fn () => 2)]);
                return $step->run('c', fn () => $a + $b);
            },
            'parallel_mixed' => function (array $event, Step $step) {
                [$x, $child, $ids] = $step->parallel([
                    fn () => $step->run('x', fn () => 'x'),
                    fn () => $step->invoke('kid', function: 'child-fn', data: ['n' => 1]),
                    fn () => $step->sendEvent('tell', ['name' => 'told', 'data' => []]),
                ]);
                return ['x' => $x, 'child' => $child, 'ids' => $ids];
            },
            'parallel_error' => function (array $event, Step $step) {
                $step->parallel([fn () => $step->run('ok', fn () => 1), fn () => $step->run('bad', fn () => throw new \Exception('boom'))]);
                return 'unreachable';
            },
            'parallel_sleep' => function (array $event, Step $step) {
                $step->parallel([fn () => $step->run('a', fn () => 1), fn () => $step->sleep('nap', '1m')]);
                return 'unreachable';
            },
            'steps_then_sleep' => function (array $event, Step $step) {
                $a = $step->run('a', fn () => 1);
                $b = $step->run('b', fn () => $a + 1);
                $step->sleep('nap', '1h');
                return $step->run('c', fn () => $b + 1);
            },
            'step_then_wait' => function (array $event, Step $step) {
                $a = $step->run('a', fn () => 'x');
                $w = $step->waitForEvent('w', event: 'go', timeout: '1m');
                return ['a' => $a, 'w' => $w];
            },
            'step_then_invoke' => function (array $event, Step $step) {
                $a = $step->run('a', fn () => 1);
                return $step->invoke('kid', function: 'child-fn', data: ['n' => $a]);
            },
            'step_then_send' => function (array $event, Step $step) {
                $a = $step->run('a', fn () => 1);
                return $step->sendEvent('tell', ['name' => 'told', 'data' => ['a' => $a]]);
            },
            'step_then_parallel' => function (array $event, Step $step) {
                $a = $step->run('a', fn () => 1);
                [$b, $c] = $step->parallel([fn () => $step->run('b', fn () => 2), fn () => $step->run('c', fn () => 3)]);
                return $a + $b + $c;
            },
            'step_then_throw' => function (array $event, Step $step) {
                $step->run('ok', fn () => 1);
                $step->run('explode', fn () => throw new \Exception('boom'));
                return 'unreachable';
            },
        ];
    }

    /** @return iterable<string, array{array<string, mixed>, string}> */
    public static function cases(): iterable
    {
        $raw = json_decode((string) file_get_contents(self::SPEC . '/cases.json'), false, 512, JSON_THROW_ON_ERROR);
        foreach ($raw as $case) {
            yield $case->name => [$case];
        }
    }

    /** @dataProvider cases */
    public function testCase(\stdClass $case): void
    {
        $handlers = self::handlers();
        $this->assertArrayHasKey($case->handler, $handlers, "no reference handler '{$case->handler}'");
        $invoke = $case->invoke;
        // No "checkpoint" field: off, so the cases before checkpointing keep one op per invoke.
        $checkpoint = $case->checkpoint ?? false;
        $checkpoint = $checkpoint instanceof \stdClass ? get_object_vars($checkpoint) : $checkpoint;
        $function = new DurableFunction(id: $invoke->functionId, trigger: ['event' => $invoke->event->name], handler: $handlers[$case->handler], checkpoint: $checkpoint);
        $body = json_encode($invoke, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        $nonce = SignatureV2::nonce();
        $headers = Support::invokeHeaders($body, $case->now, $nonce);
        $response = Serve::dispatch([$function], Support::KEY, $body, $headers, clock: fn () => $case->now, nonceStore: new MemoryNonceStore());
        $this->assertSame(200, $response['status'], $response['body']);
        Support::assertSignedAnswer($response, $nonce, $case->now);
        $op = json_decode($response['body'], false, 512, JSON_THROW_ON_ERROR);
        $expect = clone $case->expect;
        if (!empty($case->messageIsPrefix)) {
            $this->assertIsString($op->message ?? null, $response['body']);
            $this->assertStringStartsWith($expect->message, $op->message);
            $this->assertGreaterThan(strlen($expect->message . ': '), strlen($op->message), 'the detail after the prefix is missing');
            $expect->message = $op->message;
        }
        $this->assertSame(Support::canonical(json_encode($expect, JSON_THROW_ON_ERROR)), Support::canonical($response['body']));
    }

    public function testEveryReferenceHandlerHasACase(): void
    {
        $used = array_unique(array_map(fn (array $args) => $args[0]->handler, iterator_to_array(self::cases())));
        $this->assertEqualsCanonicalizing(array_keys(self::handlers()), $used);
    }

    /** @return iterable<string, array{\stdClass}> */
    public static function signatureVectors(): iterable
    {
        $raw = json_decode((string) file_get_contents(self::SPEC . '/signature-vectors.json'), false, 512, JSON_THROW_ON_ERROR);
        foreach ($raw->vectors as $i => $vector) {
            yield "vector $i" => [$vector];
        }
    }

    /** @dataProvider signatureVectors */
    public function testSignatureVector(\stdClass $vector): void
    {
        $this->assertSame($vector->signature, Signature::sign($vector->body, $vector->key));
        $this->assertTrue(Signature::verify($vector->body, $vector->key, $vector->signature));
        $this->assertTrue(Signature::verify($vector->body, $vector->key, strtoupper($vector->signature)));
        $this->assertFalse(Signature::verify($vector->body . ' ', $vector->key, $vector->signature));
        $this->assertFalse(Signature::verify($vector->body, $vector->key, strrev($vector->signature)));
        $this->assertFalse(Signature::verify($vector->body, $vector->key . 'x', $vector->signature));
    }

    /** @return \stdClass the v2 vectors file */
    private static function v2(): \stdClass
    {
        return json_decode((string) file_get_contents(self::SPEC . '/signature-v2-vectors.json'), false, 512, JSON_THROW_ON_ERROR);
    }

    /** @return iterable<string, array{\stdClass}> */
    public static function signatureV2SignVectors(): iterable
    {
        foreach (self::v2()->sign as $i => $vector) {
            yield "sign $i: {$vector->about}" => [$vector];
        }
    }

    /** @dataProvider signatureV2SignVectors */
    public function testSignatureV2SignVector(\stdClass $vector): void
    {
        $this->assertSame($vector->mac, SignatureV2::mac($vector->body, $vector->key, $vector->sender, $vector->t, $vector->n, $vector->r));
        $this->assertSame($vector->header, SignatureV2::sign($vector->body, $vector->key, $vector->sender, $vector->t, $vector->n, $vector->r));
        $parts = SignatureV2::parse($vector->header);
        $this->assertSame(['t' => $vector->t, 'n' => $vector->n, 'r' => $vector->r === '' ? null : $vector->r, 's' => $vector->mac], $parts);
    }

    /** @return iterable<string, array{\stdClass, \stdClass}> */
    public static function signatureV2VerifyVectors(): iterable
    {
        $v2 = self::v2();
        foreach ($v2->verify as $i => $case) {
            yield "verify $i: {$case->about}" => [$case, $v2->sign[$case->vector]];
        }
    }

    /** @dataProvider signatureV2VerifyVectors */
    public function testSignatureV2VerifyVector(\stdClass $case, \stdClass $signed): void
    {
        $body = $case->body ?? $signed->body;
        $header = property_exists($case, 'header') ? $case->header : $signed->header;
        $sender = $case->sender ?? $signed->sender;
        try {
            $parts = SignatureV2::verify($body, $case->keys, $header, $sender, $case->replyTo, $case->now);
            $outcome = ['ok' => true];
            $this->assertSame($signed->n, $parts['n']);
        } catch (SignatureError $e) {
            $outcome = ['ok' => false, 'reason' => $e->reason];
            $this->assertStringStartsWith(SignatureV2::HEADER . ': ', $e->getMessage(), 'the error names the header');
        }
        $this->assertSame($case->ok ? ['ok' => true] : ['ok' => false, 'reason' => $case->reason], $outcome);
    }

    public function testEveryV2VerifyReasonIsCovered(): void
    {
        $reasons = array_unique(array_map(fn (\stdClass $case) => $case->reason ?? 'ok', self::v2()->verify));
        $this->assertEqualsCanonicalizing(['ok', 'malformed', 'stale', 'mac', 'reply'], $reasons);
    }

    public function testServedEndpointRefusesMissingAndWrongSignatures(): void
    {
        $function = new DurableFunction(id: 'three_steps', trigger: ['event' => 'demo.three'], handler: self::handlers()['three_steps']);
        $body = Support::body('three_steps');
        $wrong = [
            null,
            '',
            [Signature::HEADER => Signature::sign($body, Support::KEY)], // v1 alone
            Support::invokeHeaders($body, key: 'another-key'),
            Support::invokeHeaders($body, sender: SignatureV2::APP),
            Support::invokeHeaders($body, t: (int) floor(microtime(true) * 1000) - SignatureV2::MAX_SKEW_MS - 1000),
        ];
        foreach ($wrong as $signature) {
            $response = Serve::dispatch([$function], Support::KEY, $body, $signature, nonceStore: new MemoryNonceStore());
            $this->assertSame(401, $response['status']);
            $this->assertIsString(json_decode($response['body'], true)['error']);
        }
    }
}
