<?php

declare(strict_types=1);

namespace Durable;

/**
 * The `$step` argument of a handler: run, sleep, waitForEvent, invoke, sendEvent and parallel.
 *
 * A memoized step returns its stored result at once. The first new step executes (run) or is planned
 * (sleep, waitForEvent, invoke, sendEvent) and stops the handler with a StepInterrupt, which
 * `catch (\Exception $e)` cannot swallow. A repeated id is suffixed in call order: 'fetch', 'fetch:1', …
 *
 * Inside parallel() every branch goes on until it reaches its own first new step; the new steps reached
 * together are answered together (docs/protocol.md, "Composition").
 */
final class Step
{
    /** The most events one sendEvent may carry (the engine's limit). */
    public const MAX_EVENTS = 100;

    private const EVENT_FIELDS = ['name', 'data', 'id', 'ts', 'idempotencyKey'];

    /** @var array<string, int> how often each base id was reached */
    private array $seen = [];

    /** @var array<string, mixed>|null the op answered for this replay, once it is known */
    private ?array $op = null;

    /**
     * @var list<array{op: array<string, mixed>, run: \Closure|null}>|null the new steps reached by the
     *      branches of the running parallel() (a run step's function is called once all branches stopped);
     *      null outside parallel()
     */
    private ?array $reached = null;

    /** Whether the current parallel branch reached its new step (nothing after it in the branch counts). */
    private bool $branchStopped = false;

    /**
     * @param array<string, array{type: string, data?: mixed, error?: array<string, mixed>|null}> $steps the invoke's memoized steps
     * @param \Closure(): int $clock epoch milliseconds; sleep, waitForEvent and invoke count from it
     */
    public function __construct(private array $steps, private \Closure $clock, private ?string $traceparent = null)
    {
    }

    /** The engine's W3C traceparent for this invoke, or null: pass it on so your spans join the run's trace. */
    public function traceparent(): ?string
    {
        return $this->traceparent;
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
        $this->reachNew(['op' => 'step', 'id' => $stepId], \Closure::fromCallable($fn));
    }

    /** Pause the run for $duration ('90s', '1h30m', '7d' or int ms); no process waits meanwhile. */
    public function sleep(string $id, string|int $duration): void
    {
        [$stepId, $memo] = $this->reach($id, 'sleep');
        if ($memo === null) {
            $this->reachNew(['op' => 'sleep', 'id' => $stepId, 'until' => $this->until('sleep', $stepId, $duration)]);
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
            $this->refuse($stepId, "step.waitForEvent('$stepId'): event must be a non-empty string");
        }
        $until = $this->until('waitForEvent', $stepId, $timeout);
        $this->reachNew(['op' => 'wait', 'id' => $stepId, 'event' => $event, 'match' => $match === [] ? new \stdClass() : $match, 'until' => $until]);
    }

    /**
     * Start one run of $function with $data as its event data and return that run's output once it ends.
     * The run parks meanwhile (no process waits). $timeout bounds the wait (none: as long as the child takes).
     *
     * @param DurableFunction|string $function a function of this workspace, or its id
     * @param array<string, mixed>|\stdClass $data the child's event.data (a JSON object)
     * @throws InvokeError where the handler reached the invoke, when the child failed, timed out, was
     *         cancelled or does not exist
     */
    public function invoke(string $id, DurableFunction|string $function, array|\stdClass $data = [], string|int|null $timeout = null): mixed
    {
        [$stepId, $memo] = $this->reach($id, 'invoke');
        $functionId = $function instanceof DurableFunction ? $function->id : $function;
        if ($memo !== null) {
            $error = $memo['error'] ?? null;
            if (is_array($error)) {
                throw new InvokeError(
                    is_string($error['message'] ?? null) ? $error['message'] : "the run of '$functionId' did not complete",
                    is_string($error['reason'] ?? null) ? $error['reason'] : 'failed',
                    is_string($error['runId'] ?? null) ? $error['runId'] : null,
                    is_string($error['functionId'] ?? null) ? $error['functionId'] : $functionId,
                );
            }
            return $memo['data'] ?? null;
        }
        if ($functionId === '') {
            $this->refuse($stepId, "step.invoke('$stepId'): function must be a DurableFunction or a non-empty function id");
        }
        if (is_array($data) && $data !== [] && array_is_list($data)) {
            $this->refuse($stepId, "step.invoke('$stepId'): data must be an associative array (a JSON object), got a list");
        }
        $until = $timeout === null ? null : $this->until('invoke', $stepId, $timeout);
        $this->reachNew(['op' => 'invoke', 'id' => $stepId, 'function' => $functionId, 'data' => $data === [] ? new \stdClass() : $data, 'until' => $until]);
    }

    /**
     * Send one event (['name' => …, 'data' => […], 'id' => …, 'ts' => …, 'idempotencyKey' => …]) or a list
     * of them, once per run, as Client::send would; returns their ids, in order.
     *
     * @param array{name: string, data?: array<string, mixed>|\stdClass, id?: string, ts?: int, idempotencyKey?: string}|list<array{name: string, data?: array<string, mixed>|\stdClass, id?: string, ts?: int, idempotencyKey?: string}> $events
     * @return list<string>
     */
    public function sendEvent(string $id, array $events): array
    {
        [$stepId, $memo] = $this->reach($id, 'send');
        if ($memo !== null) {
            return $memo['data'] ?? [];
        }
        $list = array_is_list($events) ? $events : [$events];
        $where = "step.sendEvent('$stepId')";
        if ($list === [] || count($list) > self::MAX_EVENTS) {
            $this->refuse($stepId, "$where: events must be one event or a list of 1 to " . self::MAX_EVENTS . ' events, got ' . count($list));
        }
        $wire = [];
        foreach ($list as $i => $event) {
            $problem = self::eventProblem($event);
            if ($problem !== null) {
                $this->refuse($stepId, "$where: events[$i]$problem");
            }
            $event['data'] = ($event['data'] ?? []) === [] ? new \stdClass() : $event['data'];
            $wire[] = ['name' => $event['name'], 'data' => $event['data']] + array_filter($event, fn ($value) => $value !== null);
        }
        $this->reachNew(['op' => 'send', 'id' => $stepId, 'events' => $wire]);
    }

    /**
     * Call every branch (each a callable doing step calls, e.g. `fn () => $step->run('a', $fa)`) and return
     * their results, keys kept. Each branch goes on until its first new step: the new run steps execute
     * one after another in this invoke and all new steps are answered together; the handler goes on
     * once every branch is memoized. A sleep or wait reached together with other new steps fails the run
     * (a run parks on one timer or one wait at a time). An ordinary throw of a branch is rethrown once
     * no branch reached a new step (the first in branch order).
     *
     * @template T
     * @param array<array-key, callable(): T> $branches
     * @return array<array-key, T>
     */
    public function parallel(array $branches): array
    {
        foreach ($branches as $key => $branch) {
            if (!is_callable($branch)) {
                throw new NonRetryableError("step.parallel: branch $key is not callable, got " . get_debug_type($branch));
            }
        }
        if ($this->op !== null) {
            throw new StepInterrupt($this->op);
        }
        $outer = $this->reached;
        if ($outer !== null && $this->branchStopped) { // a branch that swallowed its interrupt: already stopped
            throw new StepInterrupt($outer[array_key_last($outer)]['op']);
        }
        $this->reached = $outer ?? [];
        $before = count($this->reached);
        $results = [];
        $failure = null;
        try {
            foreach ($branches as $key => $branch) {
                $this->branchStopped = false;
                try {
                    $value = $branch();
                    if (!$this->branchStopped) {
                        $results[$key] = $value;
                    }
                } catch (StepInterrupt $interrupt) {
                    if ($this->op !== null) { // an answer that ends the replay at once
                        throw $interrupt;
                    }
                } catch (\Throwable $e) {
                    if (!$this->branchStopped) { // what a branch throws after its new step never happened
                        $failure ??= $e;
                    }
                }
            }
            $reached = $this->reached;
        } finally {
            $this->reached = $outer === null ? null : ($reached ?? $outer);
            $this->branchStopped = false;
        }
        if (count($reached) > $before) {
            if ($outer !== null) { // nested: the enclosing branch stops here, the outermost parallel answers
                $this->branchStopped = true;
                throw new StepInterrupt($reached[$before]['op']);
            }
            $this->op = $this->answer($reached);
            throw new StepInterrupt($this->op);
        }
        if ($failure !== null) {
            throw $failure;
        }
        return $results;
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
            $this->op ??= self::errorOp(null, new NonRetryableError('step id must be a non-empty string'));
            throw new StepInterrupt($this->op);
        }
        $count = $this->seen[$base] ?? 0;
        $this->seen[$base] = $count + 1;
        $stepId = $count > 0 ? "$base:$count" : $base;
        $memo = $this->steps[$stepId] ?? null;
        if ($memo !== null && $memo['type'] !== $kind) {
            $this->refuse($stepId, "step '$stepId' is recorded as type '{$memo['type']}', but the handler reached a '$kind' step (the handler is not deterministic)");
        }
        return [$stepId, $memo];
    }

    private function until(string $primitive, string $stepId, string|int $duration): string
    {
        try {
            return Duration::iso(($this->clock)() + Duration::toMs($duration));
        } catch (\InvalidArgumentException $e) {
            $this->refuse($stepId, "step.$primitive('$stepId'): {$e->getMessage()}");
        }
    }

    /** Answer a non-retryable error of step $stepId (a misuse of the step API, or a non-deterministic replay). */
    private function refuse(string $stepId, string $message): never
    {
        $this->reachNew(self::errorOp($stepId, new NonRetryableError($message)));
    }

    /**
     * A new step was reached: inside parallel() its branch stops and the step is kept for the answer;
     * outside, it is the answer (a run step executes now) unless one was already given, and the handler stops.
     *
     * @param array<string, mixed> $op
     */
    private function reachNew(array $op, ?\Closure $run = null): never
    {
        if ($this->reached !== null && $this->op === null) {
            if (!$this->branchStopped) {
                $this->reached[] = ['op' => $op, 'run' => $run];
                $this->branchStopped = true;
            }
            throw new StepInterrupt($op);
        }
        $this->op ??= $run === null ? $op : self::execute($op['id'], $run);
        throw new StepInterrupt($this->op);
    }

    /**
     * The answer to the new steps reached together by parallel(): their ops in reach order (a run step's
     * function called now, one after another), one op alone as itself.
     *
     * @param non-empty-list<array{op: array<string, mixed>, run: \Closure|null}> $reached
     * @return array<string, mixed>
     */
    private function answer(array $reached): array
    {
        if (count($reached) > 1) {
            foreach ($reached as ['op' => $op]) {
                if ($op['op'] === 'sleep' || $op['op'] === 'wait') {
                    $what = $op['op'] === 'sleep' ? 'a sleep' : 'a wait';
                    return self::errorOp($op['id'], new NonRetryableError(
                        "step '{$op['id']}': $what cannot run in parallel with other steps: a run parks on one timer or one wait at a time, so reach it before or after the parallel branches"
                    ));
                }
            }
        }
        $ops = array_map(fn (array $new) => $new['run'] === null ? $new['op'] : self::execute($new['op']['id'], $new['run']), $reached);
        return count($ops) === 1 ? $ops[0] : ['op' => 'parallel', 'ops' => $ops];
    }

    /** @return array<string, mixed> the step op of run step $stepId, or its error op */
    private static function execute(string $stepId, \Closure $fn): array
    {
        try {
            return self::resultOp($stepId, $fn());
        } catch (StepInterrupt $interrupt) {
            throw $interrupt;
        } catch (\Throwable $e) {
            return self::errorOp($stepId, $e);
        }
    }

    /** Why $event cannot be sent (": name must be …"), or null. */
    private static function eventProblem(mixed $event): ?string
    {
        if (!is_array($event) || ($event !== [] && array_is_list($event))) {
            return ' must be an event array [\'name\' => …, \'data\' => […]], got ' . get_debug_type($event);
        }
        foreach (array_keys($event) as $field) {
            if (!in_array($field, self::EVENT_FIELDS, true)) {
                return ": unknown field '$field' (expected " . implode(', ', self::EVENT_FIELDS) . ')';
            }
        }
        $data = $event['data'] ?? [];
        return match (true) {
            !is_string($event['name'] ?? null) || $event['name'] === '' => '.name must be a non-empty string, got ' . var_export($event['name'] ?? null, true),
            !$data instanceof \stdClass && (!is_array($data) || ($data !== [] && array_is_list($data))) => '.data must be an associative array (a JSON object)',
            isset($event['id']) && (!is_string($event['id']) || $event['id'] === '') => '.id must be a non-empty string',
            isset($event['ts']) && !is_int($event['ts']) => '.ts must be integer epoch milliseconds',
            isset($event['idempotencyKey']) && (!is_string($event['idempotencyKey']) || $event['idempotencyKey'] === '' || strlen($event['idempotencyKey']) > 256)
                => '.idempotencyKey must be a non-empty string of at most 256 characters',
            default => null,
        };
    }

    /** @return array<string, mixed> */
    private static function errorOp(?string $stepId, \Throwable $e): array
    {
        $message = $e->getMessage() !== '' ? $e->getMessage() : get_class($e);
        $retryable = !$e instanceof NonRetryableError && !$e instanceof InvokeError; // a recorded outcome: a retry throws it again
        return ['op' => 'error', 'id' => $stepId, 'message' => $message, 'retryable' => $retryable];
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
