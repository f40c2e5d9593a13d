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
 *
 * With checkpointing on (docs/protocol.md, "Checkpointing"), a new run step that succeeds outside
 * parallel() does not stop the handler: its result is kept for the answer and returned as a replay would
 * return it (JSON-encoded and decoded again), and the handler goes on until another op or a bound.
 */
final class Step
{
    /** The most events one sendEvent may carry (the engine's limit). */
    public const MAX_EVENTS = 100;

    private const EVENT_FIELDS = ['name', 'data', 'id', 'ts', 'idempotencyKey'];

    /** @var array<string, int> how often each base id was reached */
    private array $seen = [];

    /** @var array<string, mixed>|null the op answered for this replay (checkpoint included), once it is known */
    private ?array $op = null;

    /** @var list<array{id: string, data: mixed}> the new run steps executed in this invoke, in order */
    private array $checkpointed = [];

    /** The UTF-8 length of the JSON of the results in $checkpointed. */
    private int $checkpointBytes = 0;

    /** @var \Closure(): (int|float) milliseconds since the invoke arrived, for the maxMs bound */
    private \Closure $elapsedMs;

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
     * @param array{maxSteps: int, maxBytes: int, maxMs: int}|null $checkpoint the function's checkpoint
     *        bounds (DurableFunction::$checkpoint); null: one new step per invoke
     * @param (\Closure(): (int|float))|null $elapsedMs milliseconds since the invoke arrived, on a
     *        monotonic clock (default: counted from this constructor)
     */
    public function __construct(
        private array $steps,
        private \Closure $clock,
        private ?string $traceparent = null,
        private ?array $checkpoint = null,
        ?\Closure $elapsedMs = null,
    ) {
        $start = hrtime(true);
        $this->elapsedMs = $elapsedMs ?? static fn (): float => (hrtime(true) - $start) / 1e6;
    }

    /** The engine's W3C traceparent for this invoke, or null: pass it on so your spans join the run's trace. */
    public function traceparent(): ?string
    {
        return $this->traceparent;
    }

    /**
     * Run $fn once per run and return its result; replays return the memoized result without calling $fn.
     * A throw becomes a retryable error of this step (NonRetryableError: not retryable). With checkpointing
     * on, a new step's result is returned as a replay would return it: JSON-encoded and decoded again
     * (objects become arrays, 2.0 becomes 2), so the code after the step sees the same value in every replay.
     */
    public function run(string $id, callable $fn): mixed
    {
        [$stepId, $memo] = $this->reach($id, 'run');
        if ($memo !== null) {
            return $memo['data'] ?? null;
        }
        if ($this->checkpoint === null || $this->reached !== null || $this->op !== null) {
            $this->reachNew(['op' => 'step', 'id' => $stepId], \Closure::fromCallable($fn));
        }
        return $this->runCheckpointed($stepId, \Closure::fromCallable($fn));
    }

    /**
     * Execute new run step $stepId and keep its result for the checkpoint; return the result as a replay
     * would (its JSON decoded again), or stop the handler: on a throw or a result JSON cannot hold (that
     * error is the checkpoint's `then`), or on a bound (`then: null`).
     */
    private function runCheckpointed(string $stepId, \Closure $fn): mixed
    {
        try {
            $value = $fn();
        } catch (StepInterrupt $interrupt) { // the step's own code reached a new step that stopped the replay
            throw $interrupt;
        } catch (\Throwable $e) {
            $this->stop(self::errorOp($stepId, $e));
        }
        if ($this->op !== null) { // the step's code swallowed the interrupt of a step of its own
            throw new StepInterrupt($this->op);
        }
        try {
            $json = Json::encode($value);
            $replayed = json_decode($json, true, 512, JSON_THROW_ON_ERROR); // as Serve decodes the next invoke's steps
        } catch (StepInterrupt $interrupt) {
            throw $interrupt;
        } catch (\Throwable $e) { // \JsonException, or whatever a jsonSerialize() threw
            $this->stop(self::notJsonOp($stepId, $e));
        }
        $this->checkpointed[] = ['id' => $stepId, 'data' => self::frozen($json, $value)];
        $this->checkpointBytes += strlen($json);
        ['maxSteps' => $maxSteps, 'maxBytes' => $maxBytes, 'maxMs' => $maxMs] = $this->checkpoint;
        if (count($this->checkpointed) >= $maxSteps || $this->checkpointBytes >= $maxBytes || ($this->elapsedMs)() >= $maxMs) {
            $this->stop(null);
        }
        return $replayed;
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
            $this->stop($this->answer($reached));
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
        return $this->op ?? $this->withCheckpoint($error !== null ? self::errorOp(null, $error) : self::resultOp(null, $result));
    }

    /**
     * Answer $then (null: a checkpoint bound) unless an answer is already known, and stop the handler.
     *
     * @param array<string, mixed>|null $then
     */
    private function stop(?array $then): never
    {
        $this->op ??= $this->withCheckpoint($then);
        throw new StepInterrupt($this->op);
    }

    /**
     * The answer for $then after the steps checkpointed in this invoke: $then alone when there are none,
     * a plain step op for one step and no `then`, else a checkpoint op. A `step` op (a parallel group that
     * resolved to one run step) is never a `then`: it joins the steps, and `then` is null.
     *
     * @param array<string, mixed>|null $then
     * @return array<string, mixed>
     */
    private function withCheckpoint(?array $then): array
    {
        if ($this->checkpointed !== [] && $then !== null && $then['op'] === 'step') {
            $this->checkpointed[] = ['id' => $then['id'], 'data' => $then['data']];
            $then = null;
        }
        if ($this->checkpointed === [] && $then !== null) {
            return $then;
        }
        if ($then === null && count($this->checkpointed) === 1) {
            return ['op' => 'step', 'id' => $this->checkpointed[0]['id'], 'data' => $this->checkpointed[0]['data']];
        }
        return ['op' => 'checkpoint', 'steps' => $this->checkpointed, 'then' => $then];
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
        if ($this->op === null) {
            $this->stop($run === null ? $op : self::execute($op['id'], $run));
        }
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

    /**
     * A copy of $value as encoded in $json ({} stays {}), so that the answer carries the result even if the
     * handler later changes an object the step returned; $value itself when PHP objects cannot hold the
     * JSON (a key starting with NUL).
     */
    private static function frozen(string $json, mixed $value): mixed
    {
        try {
            return json_decode($json, false, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            return $value;
        }
    }

    /** @return array<string, mixed> the non-retryable error of a step's (or the handler's) result that is not JSON */
    private static function notJsonOp(?string $stepId, \Throwable $e): array
    {
        $what = $stepId === null ? 'the handler' : "step '$stepId'";
        return self::errorOp($stepId, new NonRetryableError("$what returned a value that is not JSON-serialisable: {$e->getMessage()}"));
    }

    /** @return array<string, mixed> a step's (or, without id, the handler's) result, unless it is not JSON */
    private static function resultOp(?string $stepId, mixed $value): array
    {
        try {
            Json::encode($value);
        } catch (\Throwable $e) {
            return self::notJsonOp($stepId, $e);
        }
        return $stepId === null ? ['op' => 'done', 'data' => $value] : ['op' => 'step', 'id' => $stepId, 'data' => $value];
    }
}
