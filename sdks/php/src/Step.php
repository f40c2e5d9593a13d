<?php

declare(strict_types=1);

namespace Durable;

/**
 * The `$step` argument of a handler: run, sleep and waitForEvent.
 *
 * A memoized step returns its stored result at once. The first new step executes (run) or is planned
 * (sleep, waitForEvent) and stops the handler with a StepInterrupt, which `catch (\Exception $e)`
 * cannot swallow. A repeated id is suffixed in call order: 'fetch', 'fetch:1', 'fetch:2', …
 */
final class Step
{
    /** @var array<string, int> how often each base id was reached */
    private array $seen = [];

    /** @var array<string, mixed>|null the op of the first new step reached, once one was */
    private ?array $op = null;

    /**
     * @param array<string, array{type: string, data?: mixed}> $steps the invoke's memoized steps
     * @param \Closure(): int $clock epoch milliseconds; sleep and waitForEvent count from it
     */
    public function __construct(private array $steps, private \Closure $clock)
    {
    }

    /**
     * Run $fn once per run and return its result; replays return the memoized result without calling $fn.
     * A throw becomes a retryable error of this step (NonRetryableError: not retryable).
     */
    public function run(string $id, callable $fn): mixed
    {
        [$stepId, $memo] = $this->reach($id, 'run');
        if ($memo !== null) {
            return $memo['data'] ?? null;
        }
        if ($this->op === null) {
            try {
                $this->op = self::resultOp($stepId, $fn());
            } catch (StepInterrupt $interrupt) {
                throw $interrupt;
            } catch (\Throwable $e) {
                $this->op = self::errorOp($stepId, $e);
            }
        }
        throw new StepInterrupt($this->op);
    }

    /** Pause the run for $duration ('90s', '1h30m', '7d' or int ms); no process waits meanwhile. */
    public function sleep(string $id, string|int $duration): void
    {
        [$stepId, $memo] = $this->reach($id, 'sleep');
        if ($memo === null) {
            $this->stop(['op' => 'sleep', 'id' => $stepId, 'until' => $this->until('sleep', $stepId, $duration)]);
        }
    }

    /**
     * Wait for an event named $event whose data contains $match (a recursive subset check), at most $timeout.
     *
     * @param array<string, mixed>|null $match
     * @return array<string, mixed>|null the whole matching event {id, name, data, ts}, or null on timeout
     */
    public function waitForEvent(string $id, string $event, string|int $timeout, ?array $match = null): ?array
    {
        [$stepId, $memo] = $this->reach($id, 'wait');
        if ($memo !== null) {
            return $memo['data'] ?? null;
        }
        if ($event === '') {
            $this->stop(self::errorOp($stepId, new NonRetryableError("step.waitForEvent('$stepId'): event must be a non-empty string")));
        }
        $until = $this->until('waitForEvent', $stepId, $timeout);
        $this->stop(['op' => 'wait', 'id' => $stepId, 'event' => $event, 'match' => $match === [] ? new \stdClass() : $match, 'until' => $until]);
    }

    /**
     * The op answered for one replay: the first new step reached wins, even when user code swallowed it.
     *
     * @internal used by Serve::execute
     * @return array<string, mixed>
     */
    public function finish(mixed $result, ?\Throwable $error): array
    {
        return $this->op ?? ($error !== null ? self::errorOp(null, $error) : self::resultOp(null, $result));
    }

    /** @return array{0: string, 1: array<string, mixed>|null} the call's id and its memo, if any */
    private function reach(string $base, string $kind): array
    {
        if ($base === '') {
            $this->stop(self::errorOp(null, new NonRetryableError('step id must be a non-empty string')));
        }
        $count = $this->seen[$base] ?? 0;
        $this->seen[$base] = $count + 1;
        $stepId = $count > 0 ? "$base:$count" : $base;
        $memo = $this->steps[$stepId] ?? null;
        if ($memo !== null && $memo['type'] !== $kind) {
            $this->stop(self::errorOp($stepId, new NonRetryableError(
                "step '$stepId' is recorded as type '{$memo['type']}', but the handler reached a '$kind' step (the handler is not deterministic)"
            )));
        }
        return [$stepId, $memo];
    }

    private function until(string $primitive, string $stepId, string|int $duration): string
    {
        try {
            return Duration::iso(($this->clock)() + Duration::toMs($duration));
        } catch (\InvalidArgumentException $e) {
            $this->stop(self::errorOp($stepId, new NonRetryableError("step.$primitive('$stepId'): {$e->getMessage()}")));
        }
    }

    /** @param array<string, mixed> $op */
    private function stop(array $op): never
    {
        $this->op ??= $op;
        throw new StepInterrupt($this->op);
    }

    /** @return array<string, mixed> */
    private static function errorOp(?string $stepId, \Throwable $e): array
    {
        $message = $e->getMessage() !== '' ? $e->getMessage() : get_class($e);
        return ['op' => 'error', 'id' => $stepId, 'message' => $message, 'retryable' => !$e instanceof NonRetryableError];
    }

    /** @return array<string, mixed> a step's (or, without id, the handler's) result, unless it is not JSON */
    private static function resultOp(?string $stepId, mixed $value): array
    {
        try {
            Json::encode($value);
        } catch (\Throwable $e) {
            $what = $stepId === null ? 'the handler' : "step '$stepId'";
            return self::errorOp($stepId, new NonRetryableError("$what returned a value that is not JSON-serialisable: {$e->getMessage()}"));
        }
        return $stepId === null ? ['op' => 'done', 'data' => $value] : ['op' => 'step', 'id' => $stepId, 'data' => $value];
    }
}
