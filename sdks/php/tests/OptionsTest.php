<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\Duration;
use Durable\DurableFunction;
use PHPUnit\Framework\TestCase;

/** Definition-time validation of every option; errors name the function and the field. */
final class OptionsTest extends TestCase
{
    private static function define(mixed ...$options): DurableFunction
    {
        return new DurableFunction(...($options + ['id' => 'hello', 'trigger' => ['event' => 'demo.hello'], 'handler' => fn () => null]));
    }

    /** @return iterable<string, array{string|int, int}> */
    public static function durations(): iterable
    {
        $cases = [['500ms', 500], ['90s', 90_000], ['5m', 300_000], ['12h', 43_200_000], ['30d', 2_592_000_000], ['1w', 604_800_000],
            ['1h30m', 5_400_000], ['1m30s250ms', 90_250], ['1w2d3h4m5s6ms', 788_645_006], ['0s', 0], [0, 0], [1500, 1500], ['365d', Duration::MAX_MS]];
        foreach ($cases as [$value, $ms]) {
            yield var_export($value, true) => [$value, $ms];
        }
    }

    /** @dataProvider durations */
    public function testDurations(string|int $value, int $ms): void
    {
        $this->assertSame($ms, Duration::toMs($value));
    }

    /** @return iterable<string, array{mixed}> */
    public static function invalidDurations(): iterable
    {
        foreach (['abc', '', '5', 'm5', '1.5h', '5 m', '-1s', '1y', '30m1h', '1h1h', '5M', ' 5s', '366d', -1, 1.5, true, null, [1]] as $value) {
            yield json_encode($value) => [$value];
        }
    }

    /** @dataProvider invalidDurations */
    public function testInvalidDurations(mixed $value): void
    {
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessageMatches('/^invalid duration /');
        Duration::toMs($value);
    }

    public function testIso(): void
    {
        $this->assertSame('1970-01-01T00:00:00.000Z', Duration::iso(0));
        $this->assertSame('2026-07-05T09:00:00.007Z', Duration::iso(1783242000007));
        $this->assertSame('2026-01-01T00:00:00.999Z', Duration::iso(1767225600999));
    }

    public function testTheDefinitionKeepsValuesAsWrittenWithCamelCaseKeys(): void
    {
        $fn = self::define(
            name: 'Hello',
            retries: 0,
            concurrency: ['limit' => 2, 'key' => 'tenantId'],
            priority: ['key' => 'user.rank'],
            rateLimit: ['limit' => 5, 'period' => '1h30m', 'key' => 'user.id'],
            debounce: ['period' => '5s', 'timeout' => 60_000],
        );
        $this->assertSame('hello', $fn->id);
        $this->assertSame([
            'id' => 'hello',
            'name' => 'Hello',
            'trigger' => ['event' => 'demo.hello'],
            'retries' => 0,
            'concurrency' => ['limit' => 2, 'key' => 'tenantId'],
            'rateLimit' => ['limit' => 5, 'period' => '1h30m', 'key' => 'user.id'],
            'debounce' => ['period' => '5s', 'timeout' => 60_000],
            'priority' => ['key' => 'user.rank'],
        ], $fn->definition);
        $this->assertSame(
            ['id' => 'hello', 'trigger' => ['event' => 'demo.hello'], 'throttle' => ['limit' => 1, 'period' => 90_000], 'batch' => ['maxSize' => 3, 'timeout' => '2s'], 'priority' => 7],
            self::define(throttle: ['limit' => 1, 'period' => 90_000], batch: ['maxSize' => 3, 'timeout' => '2s'], priority: 7)->definition,
        );
        $this->assertSame(
            ['id' => 'hello', 'trigger' => ['cron' => 'TZ=Europe/Amsterdam 0 3 * * *'], 'priority' => -5],
            self::define(trigger: ['cron' => 'TZ=Europe/Amsterdam 0 3 * * *'], priority: -5)->definition,
        );
    }

    public function testCompositionOptionsAreKeptAsWrittenUnderTheirWireNames(): void
    {
        $fn = self::define(
            cancelOn: [['event' => 'order.cancelled', 'match' => 'order.id', 'timeout' => '7d'], ['event' => 'user.deleted', 'timeout' => 60_000], ['event' => 'stop']],
            idempotency: 'orderId',
            singleton: ['key' => 'userId', 'mode' => 'skip'],
        );
        $this->assertSame([
            'id' => 'hello',
            'trigger' => ['event' => 'demo.hello'],
            'cancelOn' => [['event' => 'order.cancelled', 'match' => 'order.id', 'timeout' => '7d'], ['event' => 'user.deleted', 'timeout' => 60_000], ['event' => 'stop']],
            'idempotency' => 'orderId',
            'singleton' => ['key' => 'userId', 'mode' => 'skip'],
        ], $fn->definition);
        $this->assertNull($fn->failureHandler);
        $this->assertSame(['id' => 'hello', 'trigger' => ['event' => 'demo.hello'], 'singleton' => ['mode' => 'cancel']], self::define(singleton: ['mode' => 'cancel'])->definition);
    }

    public function testAFunctionWithoutTriggerIsSyncedWithTriggerNull(): void
    {
        $child = new DurableFunction(id: 'child', handler: fn () => 'out');
        $this->assertSame(['id' => 'child', 'trigger' => null], $child->definition);
        $this->assertSame('{"id":"child","trigger":null}', json_encode($child->definition));
        $this->assertSame(['id' => 'child', 'trigger' => null], self::define(id: 'child', trigger: null)->definition);
    }

    public function testOnFailureBecomesAFunctionOfItsOwn(): void
    {
        $notify = fn (array $event) => $event['data']['runId'];
        $fn = self::define(name: 'Hello', onFailure: $notify, retries: 2, concurrency: ['limit' => 1]);
        $this->assertSame('hello:failure', $fn->definition['onFailure']);
        $this->assertSame(['id' => 'hello:failure', 'name' => 'Hello (failure)', 'trigger' => null], $fn->failureHandler?->definition);
        $this->assertSame('run-1', ($fn->failureHandler->handler)(['data' => ['runId' => 'run-1']]));
        $this->assertSame('hello (failure)', self::define(onFailure: $notify)->failureHandler?->definition['name'], 'the name defaults to the id');
        $this->assertSame(str_repeat('a', 120) . ':failure', self::define(id: str_repeat('a', 120), onFailure: $notify)->failureHandler?->id);
    }

    public function testOnFailureNeedsAnIdOfAtMost120Characters(): void
    {
        $id = str_repeat('a', 121);
        $this->expectExceptionMessage("function '$id': onFailure: needs an id of at most 120 characters (the handler is synced as '<id>:failure'), the id has 121");
        self::define(id: $id, onFailure: fn () => null);
    }

    public function testTheHandlerIsRequired(): void
    {
        $this->expectExceptionMessage("function 'child': handler: is required");
        new DurableFunction(id: 'child');
    }

    public function testTheHandlerIsKeptAsAClosure(): void
    {
        $fn = new DurableFunction(id: 'h', trigger: ['event' => 'e'], handler: 'strtoupper');
        $this->assertSame('ABC', ($fn->handler)('abc'));
    }

    /** @return iterable<string, array{array<string, mixed>, string}> */
    public static function errors(): iterable
    {
        $cases = [
            [['trigger' => ['event' => '']], "trigger.event: must be a non-empty string"],
            [['trigger' => ['cron' => 5]], 'trigger.cron: must be a non-empty string'],
            [['trigger' => ['event' => 'a', 'cron' => '* * * * *']], 'trigger: must be'],
            [['trigger' => ['topic' => 'a']], 'trigger: must be'],
            [['trigger' => []], 'trigger: must be'],
            [['trigger' => ['demo.hello']], 'trigger: must be'],
            [['name' => ' '], 'name: must be a non-empty string'],
            [['retries' => -1], 'retries: must be an integer 0..20, got -1'],
            [['retries' => 21], 'retries: must be an integer 0..20'],
            [['concurrency' => []], 'concurrency.limit: is required'],
            [['concurrency' => ['limit' => 0]], 'concurrency.limit: must be an integer 1..100000, got 0'],
            [['concurrency' => ['limit' => '2']], "concurrency.limit: must be an integer 1..100000, got '2'"],
            [['concurrency' => ['limit' => 1, 'key' => 'a..b']], "concurrency.key: must be a dotted path into event.data such as 'tenantId' or 'user.id', got 'a..b'"],
            [['concurrency' => ['limit' => 1, 'scope' => 'fn']], 'concurrency.scope: unknown option (expected limit, key)'],
            [['priority' => 1001], 'priority: must be an integer -1000..1000, got 1001'],
            [['priority' => ['key' => '']], 'priority.key: must be a dotted path'],
            [['priority' => ['kee' => 'x']], 'priority.kee: unknown option'],
            [['throttle' => ['limit' => 1, 'period' => 'abc']], "throttle.period: invalid duration 'abc'"],
            [['throttle' => ['limit' => 1]], 'throttle.period: is required'],
            [['throttle' => ['limit' => 1, 'period' => '0s']], "throttle.period: must be a positive duration, got '0s'"],
            [['throttle' => ['limit' => 1, 'period' => '400d']], "throttle.period: invalid duration '400d' (at most 365d)"],
            [['rateLimit' => ['limit' => 5, 'period' => -1]], 'rateLimit.period: invalid duration -1'],
            [['rateLimit' => ['period' => '1m']], 'rateLimit.limit: is required'],
            [['debounce' => ['period' => '5s', 'timeout' => 'soon']], "debounce.timeout: invalid duration 'soon'"],
            [['debounce' => ['timeout' => '5s']], 'debounce.period: is required'],
            [['debounce' => ['period' => '5s', 'timeout' => '1s']], 'debounce.timeout: must be at least debounce.period'],
            [['batch' => ['maxSize' => 0, 'timeout' => '1s']], 'batch.maxSize: must be an integer 1..1000, got 0'],
            [['batch' => ['maxSize' => 1001, 'timeout' => '1s']], 'batch.maxSize: must be an integer 1..1000'],
            [['batch' => ['maxSize' => 2]], 'batch.timeout: is required'],
            [['batch' => ['max_size' => 2, 'timeout' => '1s']], 'batch.max_size: unknown option'],
            [['batch' => ['maxSize' => 2, 'timeout' => '1s'], 'debounce' => ['period' => '1s']], 'batch and debounce cannot be combined'],
            [['batch' => ['maxSize' => 2, 'timeout' => '1s'], 'rateLimit' => ['limit' => 1, 'period' => '1s']], 'batch and rateLimit cannot be combined'],
            [['batch' => ['maxSize' => 2, 'timeout' => '1s'], 'priority' => ['key' => 'p']], 'batch and priority.key cannot be combined'],
            [['debounce' => ['period' => '1s'], 'throttle' => ['limit' => 1, 'period' => '1s']], 'debounce and throttle cannot be combined'],
            [['batch' => ['maxSize' => 2, 'timeout' => '1s'], 'trigger' => ['cron' => '* * * * *']], 'batch and trigger.cron cannot be combined'],
            [['debounce' => ['period' => '1s'], 'trigger' => ['cron' => '* * * * *']], 'debounce and trigger.cron cannot be combined'],
            [['cancelOn' => []], 'cancelOn: must be a non-empty list like'],
            [['cancelOn' => ['event' => 'a']], 'cancelOn: must be a non-empty list like'],
            [['cancelOn' => array_fill(0, 11, ['event' => 'a'])], 'cancelOn: at most 10 entries, got 11'],
            [['cancelOn' => ['a']], "cancelOn[0]: must be ['event' => name, 'match' => key path, 'timeout' => duration], got string"],
            [['cancelOn' => [['match' => 'orderId']]], 'cancelOn[0].event: is required'],
            [['cancelOn' => [['event' => '']]], 'cancelOn[0].event: must be a non-empty string'],
            [['cancelOn' => [['event' => 'a', 'match' => 'a b']]], "cancelOn[0].match: must be a dotted path into event.data such as 'tenantId' or 'user.id', got 'a b'"],
            [['cancelOn' => [['event' => 'a', 'timeout' => 'soon']]], "cancelOn[0].timeout: invalid duration 'soon'"],
            [['cancelOn' => [['event' => 'a', 'timeout' => 0]]], 'cancelOn[0].timeout: must be a positive duration, got 0'],
            [['cancelOn' => [['event' => 'a'], ['event' => 'b', 'if' => 'x']]], 'cancelOn[1].if: unknown option (expected event, match, timeout)'],
            [['idempotency' => ''], "idempotency: must be a dotted path into event.data such as 'tenantId' or 'user.id', got ''"],
            [['idempotency' => 'order..id'], 'idempotency: must be a dotted path'],
            [['singleton' => []], 'singleton.mode: is required'],
            [['singleton' => ['mode' => 'queue']], "singleton.mode: must be 'skip' or 'cancel', got 'queue'"],
            [['singleton' => ['mode' => 'skip', 'key' => '1x']], 'singleton.key: must be a dotted path'],
            [['singleton' => ['mode' => 'skip', 'limit' => 1]], 'singleton.limit: unknown option (expected mode, key)'],
        ];
        foreach ($cases as [$options, $message]) {
            yield json_encode($options) => [$options, $message];
        }
    }

    /** @dataProvider errors */
    public function testErrorsNameTheFunctionAndTheField(array $options, string $message): void
    {
        try {
            self::define(...$options);
        } catch (\InvalidArgumentException $e) {
            $this->assertStringStartsWith("function 'hello': $message", $e->getMessage());
            return;
        }
        $this->fail("no error for $message");
    }

    public function testTheIdIsChecked(): void
    {
        foreach (['', 'has space', '-lead', str_repeat('a', 129)] as $id) {
            try {
                self::define(id: $id);
                $this->fail("id '$id' was accepted");
            } catch (\InvalidArgumentException $e) {
                $this->assertStringStartsWith('function id must be 1-128 characters', $e->getMessage());
            }
        }
        $this->assertSame('a.b:c_d-1', self::define(id: 'a.b:c_d-1')->id);
    }

    public function testWrongPhpTypesAreTypeErrors(): void
    {
        $this->expectException(\TypeError::class);
        self::define(concurrency: 2);
    }
}
