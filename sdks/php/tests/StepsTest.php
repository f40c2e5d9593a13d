<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\NonRetryableError;
use Durable\Serve;
use Durable\Step;
use Durable\StepInterrupt;
use PHPUnit\Framework\TestCase;

/** Replay details beyond the shared vectors, one op per invoke (CheckpointTest: with checkpointing). */
final class StepsTest extends TestCase
{
    private const NOW = 1767225600123;

    /** @return array<string, mixed> */
    private function op(callable $handler, array|\stdClass $steps = new \stdClass(), array|\stdClass $data = new \stdClass()): array
    {
        $function = new DurableFunction(id: 'f', trigger: ['event' => 'demo.test'], handler: $handler, checkpoint: false);
        return Support::invoke([$function], Support::body('f', $data, $steps), self::NOW);
    }

    public function testTheInterruptIsAnErrorThatCatchExceptionCannotSwallow(): void
    {
        $this->assertTrue(is_subclass_of(StepInterrupt::class, \Error::class));
        $this->assertFalse(is_subclass_of(StepInterrupt::class, \Exception::class));
        $this->assertTrue(is_subclass_of(NonRetryableError::class, \Exception::class));
    }

    public function testTheFirstNewStepWinsEvenWhenUserCodeSwallowsTheInterrupt(): void
    {
        $calls = [];
        $op = $this->op(function (array $event, Step $step) use (&$calls) {
            try {
                $step->run('first', function () use (&$calls) {
                    $calls[] = 'first';
                    return 1;
                });
            } catch (\Throwable $e) {
            }
            try {
                $step->run('second', function () use (&$calls) {
                    $calls[] = 'second';
                    return 2;
                });
            } catch (\Throwable $e) {
            }
            return 'done anyway';
        });
        $this->assertSame(['op' => 'step', 'id' => 'first', 'data' => 1], $op);
        $this->assertSame(['first'], $calls, 'no second step executes in the same invoke');
    }

    public function testMemoizedStepsAreNotExecutedAgain(): void
    {
        $calls = 0;
        $op = $this->op(function (array $event, Step $step) use (&$calls) {
            $a = $step->run('a', function () use (&$calls) {
                $calls++;
                return 'fresh';
            });
            return $step->run('b', fn () => "$a+b");
        }, ['a' => ['type' => 'run', 'data' => 'memo']]);
        $this->assertSame(0, $calls);
        $this->assertSame(['op' => 'step', 'id' => 'b', 'data' => 'memo+b'], $op);
    }

    public function testRunMemoWithoutDataReturnsNull(): void
    {
        $op = $this->op(fn (array $event, Step $step) => ['v' => $step->run('a', fn () => 1)], ['a' => ['type' => 'run']]);
        $this->assertSame(['op' => 'done', 'data' => ['v' => null]], $op);
    }

    /** @return iterable<string, array{mixed, string}> */
    public static function notJson(): iterable
    {
        yield 'NAN' => [NAN, 'Inf and NaN cannot be JSON encoded'];
        yield 'INF' => [INF, 'Inf and NaN cannot be JSON encoded'];
        yield 'resource' => [STDERR, 'Type is not supported'];
        yield 'invalid UTF-8' => [['name' => "caf\xe9"], 'Malformed UTF-8 characters'];
    }

    /** @dataProvider notJson */
    public function testNonJsonValuesAreNonRetryableErrors(mixed $value, string $detail): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->run('bad', fn () => $value));
        $this->assertSame('error', $op['op']);
        $this->assertSame('bad', $op['id']);
        $this->assertFalse($op['retryable']);
        $this->assertStringStartsWith("step 'bad' returned a value that is not JSON-serialisable: $detail", $op['message']);
        $op = $this->op(fn () => $value);
        $this->assertSame(['op' => 'error', 'id' => null, 'retryable' => false], array_diff_key($op, ['message' => 1]));
        $this->assertStringStartsWith("the handler returned a value that is not JSON-serialisable: $detail", $op['message']);
    }

    public function testPhpErrorsInStepsAndHandlersAreRetryableErrors(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->run('typed', fn () => strlen([])));
        $this->assertSame('typed', $op['id']);
        $this->assertTrue($op['retryable']);
        $this->assertStringContainsString('strlen()', $op['message']);
        $op = $this->op(fn () => throw new \RuntimeException(''));
        $this->assertSame(['op' => 'error', 'id' => null, 'message' => 'RuntimeException', 'retryable' => true], $op);
    }

    public function testBinaryExceptionMessagesStillGiveAJsonAnswer(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->run('bin', fn () => throw new \Exception("bad \xff byte")));
        $this->assertSame('bin', $op['id']);
        $this->assertSame("bad \u{FFFD} byte", $op['message']);
    }

    public function testAnEmptyMatchIsSentAsAnObject(): void
    {
        $function = new DurableFunction(id: 'f', trigger: ['event' => 'e'], handler: fn (array $event, Step $step) => $step->waitForEvent('w', event: 'go', match: [], timeout: '1s'));
        $body = Support::body('f');
        $response = Serve::dispatch([$function], Support::KEY, $body, Support::invokeHeaders($body, self::NOW), clock: fn () => self::NOW, nonceStore: new \Durable\MemoryNonceStore());
        $this->assertSame('{"op":"wait","id":"w","event":"go","match":{},"until":"2026-01-01T00:00:01.123Z"}', $response['body']);
    }

    public function testInvalidDurationsInStepsAreNonRetryableErrorsOfTheStep(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->sleep('nap', 'soon'));
        $this->assertSame(['op' => 'error', 'id' => 'nap', 'message' => "step.sleep('nap'): invalid duration 'soon'", 'retryable' => false], $op);
        $op = $this->op(fn (array $event, Step $step) => $step->waitForEvent('w', event: 'go', timeout: -5));
        $this->assertSame(['op' => 'error', 'id' => 'w', 'message' => "step.waitForEvent('w'): invalid duration -5", 'retryable' => false], $op);
        $op = $this->op(fn (array $event, Step $step) => $step->waitForEvent('w', event: '', timeout: 5));
        $this->assertFalse($op['retryable']);
    }

    public function testTypeMismatchForSleepAndWait(): void
    {
        $op = $this->op(fn (array $event, Step $step) => $step->sleep('x', '1s'), ['x' => ['type' => 'wait', 'data' => null]]);
        $this->assertSame("step 'x' is recorded as type 'wait', but the handler reached a 'sleep' step (the handler is not deterministic)", $op['message']);
        $this->assertFalse($op['retryable']);
    }

    public function testSuffixesArePerBaseId(): void
    {
        $op = $this->op(function (array $event, Step $step) {
            return [$step->run('a', fn () => 1), $step->run('b', fn () => 2), $step->run('a', fn () => 3), $step->run('b', fn () => 4)];
        }, ['a' => ['type' => 'run', 'data' => 1], 'b' => ['type' => 'run', 'data' => 2], 'a:1' => ['type' => 'run', 'data' => 3]]);
        $this->assertSame(['op' => 'step', 'id' => 'b:1', 'data' => 4], $op);
    }

    public function testExecuteUsesTheSystemClockByDefault(): void
    {
        $function = new DurableFunction(id: 'f', trigger: ['event' => 'e'], handler: fn (array $event, Step $step) => $step->sleep('nap', 0));
        $before = (int) floor(microtime(true) * 1000);
        $op = Serve::execute($function, ['event' => [], 'steps' => []]);
        $until = (new \DateTimeImmutable($op['until']))->format('Uv');
        $this->assertGreaterThanOrEqual($before, (int) $until);
        $this->assertLessThan($before + 5000, (int) $until);
    }
}
