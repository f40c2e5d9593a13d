<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\NonRetryableError;
use Durable\Serve;
use Durable\Signature;
use Durable\Step;
use PHPUnit\Framework\TestCase;

/**
 * The shared vectors of spec/conformance/: every case of cases.json against the reference handlers
 * (dispatched signed through Serve::dispatch), and every signature vector.
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
        $function = new DurableFunction(id: $invoke->functionId, trigger: ['event' => $invoke->event->name], handler: $handlers[$case->handler]);
        $body = json_encode($invoke, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        $response = Serve::dispatch([$function], Support::KEY, $body, Signature::sign($body, Support::KEY), clock: fn () => $case->now);
        $this->assertSame(200, $response['status'], $response['body']);
        $this->assertTrue(Signature::verify($response['body'], Support::KEY, $response['headers']['x-durable-signature']));
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

    public function testServedEndpointRefusesMissingAndWrongSignatures(): void
    {
        $function = new DurableFunction(id: 'three_steps', trigger: ['event' => 'demo.three'], handler: self::handlers()['three_steps']);
        $body = Support::body('three_steps');
        foreach ([null, '', Signature::sign($body, 'another-key')] as $signature) {
            $response = Serve::dispatch([$function], Support::KEY, $body, $signature);
            $this->assertSame(401, $response['status']);
            $this->assertIsString(json_decode($response['body'], true)['error']);
        }
    }
}
