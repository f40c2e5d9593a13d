"""Replay: run a handler against its memoized steps and turn the new steps it reaches into one op.

Sequential code reaches one new step at a time and answers its op. Concurrent branches
(``asyncio.gather`` in an ``async def`` handler, ``step.parallel`` in either style) each run until
they finish from memo or reach their first new step; every new ``run`` step reached together then
executes in this same invoke (concurrently), and the answer is ``{"op": "parallel", "ops": [...]}``
in reach order, or the plain op when only one new step was reached (docs/protocol.md, "Composition").

With checkpointing on (the function's ``checkpoint``, docs/protocol.md, "Checkpointing"), a new ``run``
step reached alone executes at once and the handler goes on with its result as a replay would return it
(its JSON round trip). The answer is then ``{"op": "checkpoint", "steps": [{id, data}...], "then": op}``
where ``then`` is the first other op the handler reached, or null when a bound stopped it after a step.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, NoReturn, cast

from ._errors import NonRetryableError, StepInterrupt
from ._options import Checkpoint, Duration, Function, iso_ms, parse_duration
from ._wire import SentEvent, check_json, encode, invoke_error, sent_events

Op = dict[str, Any]
Clock = Callable[[], int]

# An async handler has reached everything it can without the engine once this many event-loop turns
# pass with no step call: enough for a gather nested two or three levels deep to hand results up and go
# on (each level takes about three turns; 8 turns cost ~10 µs on uvloop, paid once per new step).
# A branch that awaits something else than a step (I/O) meanwhile reports its step in a later invoke.
_QUIET_TURNS = 8
_MAX_THREADS = 32  # plain handlers: how many run steps of one parallel execute at once


def _now_ms() -> int:
    """The SDK clock (epoch milliseconds); tests replace it."""
    return time.time_ns() // 1_000_000


def _monotonic_ms() -> float:
    """The monotonic clock of a checkpoint's ``max_ms`` (milliseconds); tests replace it."""
    return time.monotonic_ns() / 1_000_000


def _error(step_id: str | None, exc: Exception) -> Op:
    retryable = not isinstance(exc, NonRetryableError)
    return {"op": "error", "id": step_id, "message": str(exc) or type(exc).__name__, "retryable": retryable}


def _result(step_id: str | None, value: Any) -> Op:
    """The op carrying a step's (or, with no id, the handler's) result, unless it is not JSON."""
    try:
        encode(value)
    except (TypeError, ValueError) as exc:
        what = "the handler" if step_id is None else f"step {step_id!r}"
        problem = NonRetryableError(f"{what} returned a value that is not JSON-serialisable: {exc}")
        return _error(step_id, problem)
    return {"op": "done", "data": value} if step_id is None else {"op": "step", "id": step_id, "data": value}


class _Reached(NamedTuple):
    """A new step the handler reached: a ``run`` step to execute (``fn``), or the op of any other."""

    id: str
    kind: str  # run | sleep | wait | invoke | send
    op: Op | None
    fn: Callable[[], Any] | None


class _BranchStop(BaseException):
    """Ends one branch of a plain handler's ``step.parallel`` at its new step; the next branch goes on."""


class Step:
    """The ``step`` argument of a handler: ``run``, ``sleep``, ``wait_for_event``, ``invoke``,
    ``send_event`` and ``parallel``.

    In an ``async def`` handler each call returns an awaitable; in a plain ``def`` handler, the value.
    A memoized step returns its stored result. A new one is executed (``run``) or planned (the others)
    and stops the handler with :class:`StepInterrupt`, once every concurrent branch has reached its
    own new step too. Give concurrent branches distinct step ids: a repeated id is suffixed in the
    order the calls happen.
    """

    def __init__(
        self,
        steps: dict[str, Any],
        is_async: bool,
        clock: Clock | None = None,
        traceparent: str | None = None,
        checkpoint: Checkpoint | None = None,
        started_ms: float | None = None,
    ) -> None:
        self.traceparent = traceparent
        """The W3C traceparent of this invoke (the engine's span), or None: pass it on to join the trace."""
        self._steps = steps
        self._async = is_async
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._reached: list[_Reached] = []  # new steps, in reach order
        self._calls = 0  # step calls so far: an async handler is quiet when it stops making them
        self._depth = 0  # plain handlers: how many step.parallel calls are in progress
        self._settler: asyncio.Future[None] | None = None  # async handlers: decides the current round
        self._checkpoint = checkpoint  # the bounds, or None: one new step per invoke
        self._started = _monotonic_ms() if started_ms is None else started_ms  # when the invoke arrived
        self._done: list[dict[str, Any]] = []  # checkpointed steps {id, data}, in execution order
        self._bytes = 0  # the UTF-8 length of their results' JSON
        self._continued: dict[str, Any] = {}  # async handlers: results handed back to a waiting branch
        self._ended = False  # async handlers: the handler returned or raised; no branch goes on
        self._root = asyncio.current_task() if is_async else None  # async handlers: the handler's task
        self.op: Op | None = None  # the answer, once decided

    def run(self, id: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once per run and return its memoized result (``fn`` may be sync or async)."""
        step_id, memo = self._reach(id, "run")
        if memo is not None:
            return self._value(memo.get("data"))
        return self._new(_Reached(step_id, "run", None, fn))

    def sleep(self, id: str, duration: Duration) -> Any:
        """Pause the run for ``duration`` (``"5m"``, ``"1h30m"``, milliseconds or a ``timedelta``)."""
        step_id, memo = self._reach(id, "sleep")
        if memo is not None:
            return self._value(None)
        until = self._until("sleep", step_id, duration)
        return self._new(_Reached(step_id, "sleep", {"op": "sleep", "id": step_id, "until": until}, None))

    def wait_for_event(
        self, id: str, *, event: str, match: dict[str, Any] | None = None, timeout: Duration
    ) -> Any:
        """Wait for an event named ``event`` whose data contains ``match``; returns it, or None on timeout."""
        step_id, memo = self._reach(id, "wait")
        if memo is not None:
            return self._value(memo.get("data"))
        if not isinstance(event, str) or not event:
            raise NonRetryableError(f"step.wait_for_event({step_id!r}): event must be a non-empty string")
        if match is not None and not isinstance(match, dict):
            raise NonRetryableError(f"step.wait_for_event({step_id!r}): match must be a dict or None")
        until = self._until("wait_for_event", step_id, timeout)
        op = {"op": "wait", "id": step_id, "event": event, "match": match, "until": until}
        return self._new(_Reached(step_id, "wait", op, None))

    def invoke(
        self,
        id: str,
        *,
        function: Function | str,
        data: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        """Start one run of ``function`` (a function or a function id) with ``data`` as its event data
        and return the child's output once it completes.

        Raises :class:`InvokeError` when the child fails, is cancelled, does not exist, or does not
        end within ``timeout`` (no timeout: it may take as long as it needs).
        """
        step_id, memo = self._reach(id, "invoke")
        if memo is not None:
            if memo.get("error") is not None:
                return self._raise(invoke_error(memo["error"], step_id, function))
            return self._value(memo.get("data"))
        target = function.id if isinstance(function, Function) else function
        if not isinstance(target, str) or not target:
            raise NonRetryableError(
                f"step.invoke({step_id!r}): function must be a durable function or a function id, "
                f"got {function!r}"
            )
        payload = {} if data is None else data
        if not isinstance(payload, Mapping):
            raise NonRetryableError(f"step.invoke({step_id!r}): data must be a dict, got {data!r}")
        payload = dict(payload)
        check_json(f"step.invoke({step_id!r}): data", payload)
        until = None if timeout is None else self._until("invoke", step_id, timeout)
        op = {"op": "invoke", "id": step_id, "function": target, "data": payload, "until": until}
        return self._new(_Reached(step_id, "invoke", op, None))

    def send_event(self, id: str, events: SentEvent | Sequence[SentEvent]) -> Any:
        """Send one event or a list of events (all or none) and return their ids, in order.

        Each is ``{"name", "data"?, "id"?, "ts"?, "idempotencyKey"?}``, as ``Client.send_many`` takes it;
        the events trigger functions, resume waits and cancel runs like any other.
        """
        step_id, memo = self._reach(id, "send")
        if memo is not None:
            return self._value(memo.get("data"))
        batch = sent_events(step_id, events)
        return self._new(_Reached(step_id, "send", {"op": "send", "id": step_id, "events": batch}, None))

    def parallel(self, branches: Sequence[Callable[[], Any]]) -> Any:
        """Run ``branches`` (each a callable making step calls, e.g. ``lambda: step.run("a", fa)``)
        concurrently and return their results, in order.

        Their new ``run`` steps execute together, in this one invoke. In an ``async def`` handler it
        returns an awaitable (like ``asyncio.gather``, which works as well); a branch may then also be
        an awaitable such as ``step.run("a", fa)``.
        """
        if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
            raise NonRetryableError(f"step.parallel: branches must be a list of callables, got {branches!r}")
        for index, branch in enumerate(branches):
            if not callable(branch) and not (self._async and inspect.isawaitable(branch)):
                kind = "a callable or an awaitable" if self._async else "a callable (lambda: step.run(...))"
                raise NonRetryableError(f"step.parallel: branch {index} must be {kind}, got {branch!r}")
        if self._async:
            return _gather([branch() if callable(branch) else branch for branch in branches])
        results: list[Any] = []
        stopped = False
        self._depth += 1
        try:
            for branch in branches:
                try:
                    results.append(branch())
                except _BranchStop:  # the branch reached a new step; the others still get to reach theirs
                    stopped = True
        finally:
            self._depth -= 1
        if stopped:
            self._halt()
        return results

    def _reach(self, base: str, kind: str) -> tuple[str, dict[str, Any] | None]:
        """Give the call its id (``fetch``, ``fetch:1`` … in call order) and its memo, if any."""
        if not isinstance(base, str) or not base:
            raise NonRetryableError(f"step id must be a non-empty string, got {base!r}")
        self._calls += 1
        count = self._seen.get(base, 0)
        self._seen[base] = count + 1
        step_id = f"{base}:{count}" if count else base
        memo = self._steps.get(step_id)
        if memo is not None and memo.get("type") != kind:
            exc = NonRetryableError(
                f"step {step_id!r} is recorded as type {memo.get('type')!r}, but the "
                f"handler reached a {kind!r} step (the handler is not deterministic)"
            )
            if self.op is None:  # the handler is wrong: nothing else it reached is answered
                self.op = self._wrap(_error(step_id, exc))
            if not self._async:
                raise StepInterrupt(self.op)
            return step_id, None  # the call then raises where it is awaited (see _new)
        return step_id, memo

    def _until(self, primitive: str, step_id: str, duration: Any) -> str:
        try:
            ms = parse_duration(duration)
        except ValueError as exc:
            raise NonRetryableError(f"step.{primitive}({step_id!r}): {exc}") from None
        return iso_ms((self._clock or _now_ms)() + ms)

    def _value(self, value: Any) -> Any:
        if not self._async:
            return value

        async def memoized() -> Any:
            return value

        return memoized()

    def _raise(self, exc: BaseException) -> Any:
        """Raise ``exc`` where the call is awaited (async handlers) or at once (plain ones)."""
        if not self._async:
            raise exc

        async def raising() -> NoReturn:
            raise exc

        return raising()

    def _new(self, reached: _Reached) -> Any:
        """Record a new step; stop the handler (plain) or return an awaitable that stops it (async).

        With checkpointing, a plain handler's ``run`` step outside any ``step.parallel`` executes here
        and the handler goes on; an async handler's goes on once its round finds it alone (``_settle``).
        """
        if self.op is not None:  # the answer is decided (user code swallowed the interrupt): repeat it
            return self._raise(StepInterrupt(self.op))
        alone = not self._depth and not self._reached  # not one of several steps reached together
        if not self._async and self._checkpoint is not None and reached.kind == "run" and alone:
            value = self._record(_execute_sync(reached.id, _fn(reached)))
            if self.op is not None:
                raise StepInterrupt(self.op)
            return value
        self._reached.append(reached)
        if not self._async:
            self._halt()
        if alone and reached.kind == "run" and self._settler is None:
            return self._alone(reached)
        if self._settler is None:
            self._settler = asyncio.get_running_loop().create_task(self._settle())
        return self._join(self._settler, reached.id)

    async def _alone(self, reached: _Reached) -> Any:
        """Async handlers: a ``run`` step awaited by the handler's own task (no gather or
        ``step.parallel`` branch can be pending there) while still alone (no other step was called
        since) executes at once, without waiting for a quiet round. With checkpointing the handler goes
        on, and steps reached while it executes (by tasks the handler started) wait for it, as for a
        settled round, and form the next round; without, its op is the answer and those steps are
        reached again by the next invoke's replay. Otherwise the step joins a round like any other."""
        loop = asyncio.get_running_loop()
        if (
            asyncio.current_task() is not self._root
            or self._settler is not None
            or self.op is not None
            or self._reached != [reached]
        ):
            if self._settler is None:
                self._settler = loop.create_task(self._settle())
            return await self._join(self._settler, reached.id)
        executing: asyncio.Future[None] = loop.create_future()
        self._settler = executing
        try:
            done = await _execute_async(reached.id, _fn(reached))
        except BaseException:  # cancelled: the steps reached meanwhile form a round of their own
            self._reached.remove(reached)
            self._settler = loop.create_task(self._settle()) if self._reached else None
            executing.set_result(None)
            raise
        if self._checkpoint is None:  # one step per invoke: the step's op is the answer
            if self.op is None:
                self.op = done
            value = None
        else:
            value = self._record(done) if self.op is None else None
        self._continue(reached.id, value, 1)
        if self._settler is executing:  # the answer is decided: nothing goes on
            self._settler = None
        executing.set_result(None)
        if self.op is not None:
            raise StepInterrupt(self.op)
        return self._continued.pop(reached.id)

    def _halt(self) -> NoReturn:
        """Plain handlers: end this parallel branch, or, outside any, answer what was reached."""
        if self._depth:
            raise _BranchStop
        if self.op is None:
            self.op = self._wrap(self._answer_sync(self._reached))
        raise StepInterrupt(self.op)

    async def _join(self, settler: asyncio.Future[None], step_id: str) -> Any:
        """Async handlers: the step's result if its branch goes on, else stop with the answer."""
        while True:
            await asyncio.shield(settler)  # one branch being cancelled must not cancel the answer
            if step_id in self._continued:
                return self._continued.pop(step_id)
            if self.op is not None:
                raise StepInterrupt(self.op)
            # reached while the round's single step executed: the next round decides
            settler = cast(asyncio.Future[None], self._settler)

    async def _settle(self) -> None:
        """Async handlers: let every branch reach what it can, then decide the round: the answer, or,
        with checkpointing, a ``run`` step reached alone executes and its branch goes on."""
        quiet, calls = 0, self._calls
        while quiet < _QUIET_TURNS and self.op is None:
            await asyncio.sleep(0)
            quiet, calls = (quiet + 1, calls) if self._calls == calls else (0, self._calls)
        if self.op is not None:
            return
        reached = list(self._reached)
        op = _refusal(reached)
        if op is None:
            runs = [item for item in reached if item.kind == "run"]
            done = await asyncio.gather(*(_execute_async(item.id, _fn(item)) for item in runs))
            if self._checkpoint is not None and not self._ended and len(reached) == len(runs) == 1:
                if self.op is None:
                    self._continue(reached[0].id, self._record(done[0]), len(reached))
                return
            op = _combine(reached, dict(zip([item.id for item in runs], done, strict=True)))
        if self.op is None:
            self.op = self._wrap(op)

    def _continue(self, step_id: str, value: Any, decided: int) -> None:
        """Async handlers: hand ``value`` to the step's branch unless the answer is decided, and start
        the next round for the steps reached meanwhile."""
        if self.op is not None:
            return
        self._continued[step_id] = value
        self._reached = self._reached[decided:]
        self._settler = asyncio.get_running_loop().create_task(self._settle()) if self._reached else None

    def _record(self, op: Op) -> Any:
        """Checkpoint the op of a step executed alone and return its result as a replay would (the JSON
        round trip), or decide the answer: the step failed (it is ``then``) or a bound is reached."""
        if op["op"] != "step":
            self.op = self._wrap(op)
            return None
        raw = encode(op["data"])
        self._done.append({"id": op["id"], "data": json.loads(raw)})  # a copy the handler cannot change
        self._bytes += len(raw)
        bounds = cast(Checkpoint, self._checkpoint)
        if (
            len(self._done) >= bounds.max_steps
            or self._bytes >= bounds.max_bytes
            or _monotonic_ms() - self._started >= bounds.max_ms
        ):
            self.op = self._wrap(None)
        return json.loads(raw)

    def _wrap(self, then: Op | None) -> Op:
        """The answer: ``then`` alone when nothing was checkpointed, else the checkpoint ending in it.

        A ``step`` op (a parallel group that resolved to one step) cannot be ``then``: it joins the
        checkpointed steps, with ``then`` null. A single step with ``then`` null is the plain op.
        """
        if not self._done:
            return cast(Op, then)
        steps = list(self._done)
        if then is not None and then["op"] == "step":
            steps.append({"id": then["id"], "data": then["data"]})
            then = None
        if then is None and len(steps) == 1:
            return {"op": "step", **steps[0]}
        return {"op": "checkpoint", "steps": steps, "then": then}

    def _answer_sync(self, reached: list[_Reached]) -> Op:
        refused = _refusal(reached)
        if refused is not None:
            return refused
        runs = [item for item in reached if item.kind == "run"]
        if len(runs) < 2:
            done = [_execute_sync(item.id, _fn(item)) for item in runs]
        else:
            with ThreadPoolExecutor(max_workers=min(len(runs), _MAX_THREADS)) as pool:
                done = list(pool.map(lambda item: _execute_sync(item.id, _fn(item)), runs))
        return _combine(reached, dict(zip([item.id for item in runs], done, strict=True)))

    async def _answer(self) -> Op | None:
        """Async handlers: the answer decided by the new steps reached; None if none decided it."""
        if self._settler is None and self._reached and self.op is None:  # a step call never awaited
            self._settler = asyncio.get_running_loop().create_task(self._settle())
        while self._settler is not None and self.op is None:
            await self._settler
        return self.op


def _fn(item: _Reached) -> Callable[[], Any]:
    assert item.fn is not None  # a run step always has its function
    return item.fn


def _refusal(reached: list[_Reached]) -> Op | None:
    """The error answered when a sleep or a wait was reached together with other new steps."""
    if len(reached) < 2:
        return None
    for item in reached:
        if item.kind in ("sleep", "wait"):
            what = "a sleep" if item.kind == "sleep" else "a wait"
            return _error(
                item.id,
                NonRetryableError(
                    f"step {item.id!r}: {what} cannot run in parallel with other steps (a run parks on "
                    "one timer or one wait at a time: reach it before or after the parallel steps)"
                ),
            )
    return None


def _combine(reached: list[_Reached], executed: dict[str, Op]) -> Op:
    """One op per new step, in reach order; a single one is answered as itself."""
    ops = [executed[item.id] if item.op is None else item.op for item in reached]
    return ops[0] if len(ops) == 1 else {"op": "parallel", "ops": ops}


def _execute_sync(step_id: str, fn: Callable[[], Any]) -> Op:
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
    except Exception as exc:
        return _error(step_id, exc)
    return _result(step_id, result)


async def _execute_async(step_id: str, fn: Callable[[], Any]) -> Op:
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return _error(step_id, exc)
    return _result(step_id, result)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _gather(branches: list[Any]) -> list[Any]:
    awaitables = [branch if inspect.isawaitable(branch) else _awaited_value(branch) for branch in branches]
    return list(await asyncio.gather(*awaitables))


async def _awaited_value(value: Any) -> Any:
    return value


def _finish(step: Step, answer: Op | None, result: Any = None, exc: Exception | None = None) -> Op:
    # A reached step wins even when user code swallowed the interrupt and went on.
    if answer is not None:
        return answer
    if exc is not None:
        return step._wrap(_error(None, exc))
    return step._wrap(_result(None, result))


def _step_for(
    function: Function, invoke: dict[str, Any], is_async: bool, clock: Clock | None, started_ms: float | None
) -> Step:
    return Step(
        invoke["steps"],
        is_async=is_async,
        clock=clock,
        traceparent=invoke.get("traceparent"),
        checkpoint=function.checkpoint,
        started_ms=started_ms,
    )


def execute_sync(
    function: Function, invoke: dict[str, Any], clock: Clock | None = None, started_ms: float | None = None
) -> Op:
    """Replay a plain ``def`` handler for one invoke and return the op to answer.

    ``started_ms`` is when the invoke arrived, on the :func:`_monotonic_ms` clock (default: now).
    """
    step = _step_for(function, invoke, False, clock, started_ms)
    result: Any = None
    error: Exception | None = None
    try:
        result = function.handler(invoke["event"], step)
    except StepInterrupt:
        pass
    except Exception as exc:
        error = exc
    if step.op is None and step._reached:  # user code swallowed a branch's stop and went on
        step.op = step._wrap(step._answer_sync(step._reached))
    return _finish(step, step.op, result, error)


async def execute_async(
    function: Function, invoke: dict[str, Any], clock: Clock | None = None, started_ms: float | None = None
) -> Op:
    """Replay an ``async def`` handler for one invoke and return the op to answer (see execute_sync)."""
    step = _step_for(function, invoke, True, clock, started_ms)
    result: Any = None
    error: Exception | None = None
    try:
        result = await function.handler(invoke["event"], step)
    except StepInterrupt:
        pass
    except Exception as exc:
        error = exc
    step._ended = True  # a step still to decide is answered, as a plain handler's would be
    return _finish(step, await step._answer(), result, error)


def execute_blocking(function: Function, invoke: dict[str, Any], started_ms: float | None = None) -> Op:
    """Replay in this thread: a plain handler directly, an ``async def`` one in a fresh event loop."""
    if is_async(function):
        return asyncio.run(execute_async(function, invoke, started_ms=started_ms))
    return execute_sync(function, invoke, started_ms=started_ms)


def is_async(function: Function) -> bool:
    """Tell whether the function's handler is an ``async def`` (or an object whose ``__call__`` is)."""
    handler = function.handler
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
