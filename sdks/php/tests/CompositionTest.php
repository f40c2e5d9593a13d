<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\InvokeError;
use Durable\MemoryNonceStore;
use Durable\NonRetryableError;
use Durable\Serve;
use Durable\Step;
use PHPUnit\Framework\TestCase;

/** invoke, sendEvent, parallel and onFailure beyond the shared vectors (docs/protocol.md, "Composition"). */
final class CompositionTest extends TestCase
{
    private const NOW = 1767225600123;

    /** @return array<string, mixed> the op answered by $handler for one invoke */
    private function op(callable $handler, array|\stdClass $steps = new \stdClass(), array|\stdClass $data = new \stdClass()): array
    {
        $function = new DurableFunction(id: 'f', trigger: ['event' => 'demo.test'], handler: $handler);
        return Support::invoke([$function], Support::body('f', $data, $steps), self::NOW);
    }

    /** The raw answer body, to see `{}` versus `[]`. */
    private function body(callable $handler, array|\stdClass $steps = new \stdClass()): string
    {
        $function = new DurableFunction(id: 'f', trigger: ['event' => 'demo.test'], handler: $handler);
        $body = Support::body('f', new \stdClass(), $steps);
        return Serve::dispatch([$function], Support::KEY, $body, Support::invokeHeaders($body, self::NOW), clock: fn () => self::NOW, nonceStore: new MemoryNonceStore())['body'];
    }

    /** @return array<string, mixed> an invoke memo whose child did not complete */
    private static function failedChild(string $reason = 'failed', ?string $runId = 'run-child'): array
    {
        return ['type' => 'invoke', 'data' => null, 'error' => ['message' => 'card declined', 'reason' => $reason, 'runId' => $runId, 'functionId' => 'charge-card']];
    }

    public function testInvokeTakesAFunctionObjectAndSendsEmptyDataAsAnObject(): void
    {
        $child = new DurableFunction(id: 'charge-card', handler: fn () => 'charged');
        $this->assertSame(
            '{"op":"invoke","id":"charge","function":"charge-card","data":{},"until":"2026-01-01T00:00:01.623Z"}',
            $this->body(fn (array $event, Step $step) => $step->invoke('charge', function: $child, timeout: 1500)),
        );
        $this->assertSame(
            '{"op":"invoke","id":"charge","function":"charge-card","data":{"n":1},"until":null}',
            $this->body(fn (array $event, Step $step) => $step->invoke('charge', function: 'charge-card', data: (object) ['n' => 1])),
        );
    }

    public function testInvokeErrorCarriesTheChildsOutcomeAndIsAnOrdinaryException(): void
    {
        $caught = null;
        $op = $this->op(function (array $event, Step $step) use (&$caught) {
            try {
                return $step->invoke('charge', function: 'charge-card');
            } catch (\Exception $e) { // the catch-all a user writes: it sees the InvokeError
                $caught = $e;
                return 'handled';
            }
        }, ['charge' => self::failedChild('cancelled')]);
        $this->assertSame(['op' => 'done', 'data' => 'handled'], $op);
        $this->assertInstanceOf(InvokeError::class, $caught);
        $this->assertSame(['card declined', 'cancelled', 'run-child', 'charge-card'], [$caught->getMessage(), $caught->reason, $caught->runId, $caught->functionId]);
    }

    public function testAnUncaughtInvokeErrorFailsTheRunWithoutRetries(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->invoke('charge', function: 'charge-card'), ['charge' => self::failedChild('not_found', null)]);
        $this->assertSame(['op' => 'error', 'id' => null, 'message' => 'card declined', 'retryable' => false], $op);
    }

    public function testAnInvokeMemoWithoutErrorReturnsItsDataEvenNull(): void
    {
        $op = $this->op(fn (array $event, Step $step) => ['out' => $step->invoke('charge', function: 'charge-card')], ['charge' => ['type' => 'invoke', 'data' => null]]);
        $this->assertSame(['op' => 'done', 'data' => ['out' => null]], $op);
    }

    /** @return iterable<string, array{callable(Step): mixed, string}> */
    public static function misusedSteps(): iterable
    {
        yield 'invoke data as a list' => [fn (Step $step) => $step->invoke('i', function: 'child', data: [1, 2]), "step.invoke('i'): data must be an associative array (a JSON object), got a list"];
        yield 'invoke without function id' => [fn (Step $step) => $step->invoke('i', function: ''), "step.invoke('i'): function must be a DurableFunction or a non-empty function id"];
        yield 'invoke with a bad timeout' => [fn (Step $step) => $step->invoke('i', function: 'child', timeout: 'soon'), "step.invoke('i'): invalid duration 'soon'"];
        yield 'send without name' => [fn (Step $step) => $step->sendEvent('s', ['data' => ['n' => 1]]), "step.sendEvent('s'): events[0].name must be a non-empty string, got NULL"];
        yield 'send with an empty name' => [fn (Step $step) => $step->sendEvent('s', [['name' => 'ok'], ['name' => '']]), "step.sendEvent('s'): events[1].name must be a non-empty string, got ''"];
        yield 'send of no events' => [fn (Step $step) => $step->sendEvent('s', []), "step.sendEvent('s'): events must be one event or a list of 1 to 100 events, got 0"];
        yield 'send of 101 events' => [fn (Step $step) => $step->sendEvent('s', array_fill(0, 101, ['name' => 'e'])), "step.sendEvent('s'): events must be one event or a list of 1 to 100 events, got 101"];
        yield 'send with list data' => [fn (Step $step) => $step->sendEvent('s', ['name' => 'e', 'data' => [1]]), "step.sendEvent('s'): events[0].data must be an associative array (a JSON object)"];
        yield 'send with an unknown field' => [fn (Step $step) => $step->sendEvent('s', ['name' => 'e', 'payload' => []]), "step.sendEvent('s'): events[0]: unknown field 'payload' (expected name, data, id, ts, idempotencyKey)"];
        yield 'send with a bad idempotencyKey' => [fn (Step $step) => $step->sendEvent('s', ['name' => 'e', 'idempotencyKey' => str_repeat('k', 257)]), "step.sendEvent('s'): events[0].idempotencyKey must be a non-empty string of at most 256 characters"];
        yield 'send with a bad ts' => [fn (Step $step) => $step->sendEvent('s', ['name' => 'e', 'ts' => '2026']), "step.sendEvent('s'): events[0].ts must be integer epoch milliseconds"];
        yield 'send of a non-array' => [fn (Step $step) => $step->sendEvent('s', ['e']), "step.sendEvent('s'): events[0] must be an event array ['name' => …, 'data' => […]], got string"];
    }

    /**
     * @dataProvider misusedSteps
     * @param callable(Step): mixed $call
     */
    public function testMisusedStepsAreNonRetryableErrorsNamingTheStep(callable $call, string $message): void
    {
        $op = $this->op(fn (array $event, Step $step) => $call($step));
        $this->assertSame(['op' => 'error', 'id' => $op['id'], 'message' => $message, 'retryable' => false], $op);
        $this->assertContains($op['id'], ['i', 's']);
    }

    public function testSendEventPassesTheEventsThroughWithDataAsAnObject(): void
    {
        $events = [['name' => 'a'], ['name' => 'b', 'data' => ['n' => 1], 'id' => 'evt-b', 'ts' => 1767225600000, 'idempotencyKey' => 'k-1'], ['name' => 'c', 'id' => null]];
        $this->assertSame(
            '{"op":"send","id":"s","events":[{"name":"a","data":{}},{"name":"b","data":{"n":1},"id":"evt-b","ts":1767225600000,"idempotencyKey":"k-1"},{"name":"c","data":{}}]}',
            $this->body(fn (array $event, Step $step) => $step->sendEvent('s', $events)),
        );
    }

    public function testConcurrentBranchesAllExecuteInOneInvoke(): void
    {
        $calls = [];
        $handler = function (array $event, Step $step) use (&$calls) {
            $branch = function (string $id) use ($step, &$calls) { // not fn: it would capture a copy of $calls
                return function () use ($step, $id, &$calls) {
                    return $step->run($id, function () use ($id, &$calls) {
                        $calls[] = $id;
                        return strtoupper($id);
                    });
                };
            };
            return $step->parallel(['a' => $branch('a'), 'b' => $branch('b'), 'c' => $branch('c')]);
        };
        $op = $this->op($handler);
        $this->assertSame(['a', 'b', 'c'], $calls, 'every new run step executed in this one invoke, in call order');
        $this->assertSame(['op' => 'parallel', 'ops' => [
            ['op' => 'step', 'id' => 'a', 'data' => 'A'], ['op' => 'step', 'id' => 'b', 'data' => 'B'], ['op' => 'step', 'id' => 'c', 'data' => 'C'],
        ]], $op);
        $calls = [];
        $op = $this->op($handler, ['a' => ['type' => 'run', 'data' => 'A'], 'b' => ['type' => 'run', 'data' => 'B'], 'c' => ['type' => 'run', 'data' => 'C']]);
        $this->assertSame([], $calls);
        $this->assertSame(['op' => 'done', 'data' => ['a' => 'A', 'b' => 'B', 'c' => 'C']], $op, 'the results keep the branch keys');
    }

    public function testEachBranchGoesOnUntilItsOwnFirstNewStep(): void
    {
        $handler = fn (array $event, Step $step) => $step->parallel([
            function () use ($step) {
                $one = $step->run('one', fn () => 1);
                return $step->run('two', fn () => $one + 1);
            },
            fn () => $step->run('other', fn () => 'o'),
        ]);
        $this->assertSame(['op' => 'parallel', 'ops' => [['op' => 'step', 'id' => 'one', 'data' => 1], ['op' => 'step', 'id' => 'other', 'data' => 'o']]], $this->op($handler));
        $op = $this->op($handler, ['one' => ['type' => 'run', 'data' => 1], 'other' => ['type' => 'run', 'data' => 'o']]);
        $this->assertSame(['op' => 'step', 'id' => 'two', 'data' => 2], $op, 'one new step left is a plain op');
    }

    public function testRepeatedIdsInBranchesAreSuffixedInCallOrder(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->parallel(array_map(fn (int $i) => fn () => $step->run('fetch', fn () => $i), [0, 1, 2])));
        $this->assertSame(['fetch', 'fetch:1', 'fetch:2'], array_column($op['ops'], 'id'));
        $this->assertSame([0, 1, 2], array_column($op['ops'], 'data'));
    }

    public function testAFailingBranchIsAnErrorOpBesideTheOthers(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->parallel([
            fn () => $step->run('fatal', fn () => throw new NonRetryableError('bad input')),
            fn () => $step->run('ok', fn () => 1),
            fn () => $step->run('boom', fn () => throw new \RuntimeException('boom')),
        ]));
        $this->assertSame(['op' => 'parallel', 'ops' => [
            ['op' => 'error', 'id' => 'fatal', 'message' => 'bad input', 'retryable' => false],
            ['op' => 'step', 'id' => 'ok', 'data' => 1],
            ['op' => 'error', 'id' => 'boom', 'message' => 'boom', 'retryable' => true],
        ]], $op);
    }

    public function testAWaitReachedWithOtherStepsFailsTheRunAndExecutesNothing(): void
    {
        $calls = 0;
        $op = $this->op(function (array $event, Step $step) use (&$calls) {
            return $step->parallel([
                function () use ($step, &$calls) {
                    return $step->run('a', function () use (&$calls) {
                        return ++$calls;
                    });
                },
                fn () => $step->waitForEvent('approval', event: 'approved', timeout: '1d'),
            ]);
        });
        $this->assertSame(0, $calls);
        $this->assertSame(['op' => 'error', 'id' => 'approval', 'retryable' => false], array_diff_key($op, ['message' => 1]));
        $this->assertStringStartsWith("step 'approval': a wait cannot run in parallel with other steps: ", $op['message']);
    }

    public function testASleepAloneInAParallelIsAPlainSleep(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->parallel([fn () => $step->run('a', fn () => 1), fn () => $step->sleep('nap', '1s')]), ['a' => ['type' => 'run', 'data' => 1]]);
        $this->assertSame(['op' => 'sleep', 'id' => 'nap', 'until' => '2026-01-01T00:00:01.123Z'], $op);
    }

    public function testABranchThrowIsRethrownOnceNoBranchHasANewStep(): void
    {
        $handler = function (array $event, Step $step) {
            try {
                [, $b] = $step->parallel([fn () => $step->invoke('charge', function: 'charge-card'), fn () => $step->run('b', fn () => 'b')]);
                return $b;
            } catch (InvokeError $e) {
                return "caught {$e->reason}";
            }
        };
        $this->assertSame(['op' => 'step', 'id' => 'b', 'data' => 'b'], $this->op($handler, ['charge' => self::failedChild()]), 'the new step of the other branch is answered first');
        $op = $this->op($handler, ['charge' => self::failedChild('timeout'), 'b' => ['type' => 'run', 'data' => 'b']]);
        $this->assertSame(['op' => 'done', 'data' => 'caught timeout'], $op);
    }

    public function testNestedParallelsAnswerTogether(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->parallel([
            fn () => $step->parallel([fn () => $step->run('a', fn () => 1), fn () => $step->sendEvent('s', ['name' => 'e'])]),
            fn () => $step->run('b', fn () => 2),
        ]));
        $this->assertSame(['a', 's', 'b'], array_column($op['ops'], 'id'));
        $this->assertSame('parallel', $op['op']);
    }

    public function testABranchThatSwallowsItsInterruptReportsOnlyItsFirstNewStep(): void
    {
        $calls = [];
        $op = $this->op(function (array $event, Step $step) use (&$calls) {
            return $step->parallel([function () use ($step, &$calls) {
                try {
                    $step->run('first', function () use (&$calls) {
                        $calls[] = 'first';
                    });
                } catch (\Throwable) {
                }
                return $step->run('second', function () use (&$calls) {
                    $calls[] = 'second';
                });
            }, fn () => $step->run('other', fn () => 1)]);
        });
        $this->assertSame(['first', 'other'], array_column($op['ops'], 'id'));
        $this->assertSame(['first'], $calls);
    }

    public function testANonDeterministicBranchIsAnErrorOfItsStep(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->parallel([fn () => $step->run('a', fn () => 1), fn () => $step->sendEvent('b', ['name' => 'e'])]), ['b' => ['type' => 'run', 'data' => 1]]);
        $this->assertSame([
            ['op' => 'step', 'id' => 'a', 'data' => 1],
            ['op' => 'error', 'id' => 'b', 'message' => "step 'b' is recorded as type 'run', but the handler reached a 'send' step (the handler is not deterministic)", 'retryable' => false],
        ], $op['ops']);
    }

    public function testABranchMustBeCallable(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->parallel([fn () => 1, 'nope' => 42]));
        $this->assertSame(['op' => 'error', 'id' => null, 'message' => 'step.parallel: branch nope is not callable, got int', 'retryable' => false], $op);
        $this->assertSame(['op' => 'done', 'data' => []], $this->op(fn (array $event, Step $step) => $step->parallel([])));
    }

    public function testTheFailureHandlerIsServedAsItsOwnFunction(): void
    {
        $ship = new DurableFunction(
            id: 'ship',
            trigger: ['event' => 'order.paid'],
            handler: fn () => throw new NonRetryableError('out of stock'),
            onFailure: fn (array $event, Step $step) => $step->run('notify', fn () => "ops told about {$event['data']['runId']}: {$event['data']['error']['message']}"),
        );
        $failed = ['runId' => 'run-9', 'functionId' => 'ship', 'error' => ['message' => 'out of stock'], 'event' => ['name' => 'order.paid', 'data' => []]];
        $event = ['id' => 'evt-f', 'name' => 'durable/run.failed', 'data' => $failed, 'ts' => 1767225600000];
        $body = json_encode(['runId' => 'run-10', 'functionId' => 'ship:failure', 'attempt' => 1, 'event' => $event, 'steps' => new \stdClass()], JSON_THROW_ON_ERROR);
        $told = 'ops told about run-9: out of stock';
        $this->assertSame(['op' => 'checkpoint', 'steps' => [['id' => 'notify', 'data' => $told]], 'then' => ['op' => 'done', 'data' => $told]], Support::invoke([$ship], $body, self::NOW));
        $listed = Serve::dispatch([$ship], Support::KEY, '', null, 'GET');
        $this->assertSame(['functions' => ['ship', 'ship:failure']], json_decode($listed['body'], true));
    }

    public function testAFunctionCannotShareTheIdOfAFailureHandler(): void
    {
        $ship = new DurableFunction(id: 'ship', trigger: ['event' => 'e'], handler: fn () => null, onFailure: fn () => null);
        $clash = new DurableFunction(id: 'ship:failure', trigger: ['event' => 'e'], handler: fn () => null);
        $this->expectExceptionMessage("duplicate function id 'ship:failure'");
        Serve::dispatch([$ship, $clash], Support::KEY, '', null, 'GET');
    }
}
