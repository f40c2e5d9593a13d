"""Replay: run a handler against its memoized steps and turn the first new step into one op."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import NonRetryableError, StepInterrupt
from ._options import Duration, Function, iso_ms, parse_duration

Op = dict[str, Any]
Clock = Callable[[], int]


def _now_ms() -> int:
    """The SDK clock (epoch milliseconds); tests replace it."""
    return time.time_ns() // 1_000_000


def encode(value: Any) -> bytes:
    """Serialise compactly as UTF-8 JSON; raises ``TypeError``/``ValueError`` for non-JSON values."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


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


class Step:
    """The ``step`` argument of a handler: ``run``, ``sleep`` and ``wait_for_event``.

    In an ``async def`` handler each call returns an awaitable; in a plain ``def`` handler, the value.
    A memoized step returns its stored result; the first new one executes (``run``) or is planned
    (``sleep``, ``wait_for_event``) and stops the handler with :class:`StepInterrupt`.
    """

    def __init__(self, steps: dict[str, Any], is_async: bool, clock: Clock | None = None) -> None:
        self._steps = steps
        self._async = is_async
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._planned: asyncio.Future[Op] | None = None
        self.op: Op | None = None  # the op of the new step, once one was reached

    def run(self, id: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once per run and return its memoized result (``fn`` may be sync or async)."""
        step_id, memo = self._reach(id, "run")
        if memo is not None:
            return self._value(memo.get("data"))
        if not self._async:
            return self._stop(self._execute_sync(step_id, fn))
        return self._stop_async(lambda: self._execute_async(step_id, fn))

    def sleep(self, id: str, duration: Duration) -> Any:
        """Pause the run for ``duration`` (``"5m"``, ``"1h30m"``, milliseconds or a ``timedelta``)."""
        step_id, memo = self._reach(id, "sleep")
        if memo is not None:
            return self._value(None)
        until = self._until("sleep", step_id, duration)
        return self._plan({"op": "sleep", "id": step_id, "until": until})

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
        return self._plan({"op": "wait", "id": step_id, "event": event, "match": match, "until": until})

    def _reach(self, base: str, kind: str) -> tuple[str, dict[str, Any] | None]:
        """Give the call its id (``fetch``, ``fetch:1`` … in call order) and its memo, if any."""
        if not isinstance(base, str) or not base:
            raise NonRetryableError(f"step id must be a non-empty string, got {base!r}")
        count = self._seen.get(base, 0)
        self._seen[base] = count + 1
        step_id = f"{base}:{count}" if count else base
        memo = self._steps.get(step_id)
        if memo is not None and memo.get("type") != kind:
            exc = NonRetryableError(
                f"step {step_id!r} is recorded as type {memo.get('type')!r}, but the "
                f"handler reached a {kind!r} step (the handler is not deterministic)"
            )
            self._stop(_error(step_id, exc))
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

    def _plan(self, op: Op) -> Any:
        if not self._async:
            return self._stop(op)

        async def planned() -> Op:
            return op

        return self._stop_async(planned)

    def _stop(self, op: Op) -> Any:
        """Stop the handler with the first op reached; any later new step repeats that op."""
        if self.op is None:
            self.op = op
        raise StepInterrupt(self.op)

    async def _stop_async(self, reach: Callable[[], Awaitable[Op]]) -> Any:
        # Concurrent step calls (asyncio.gather): the first to start owns the invoke, the others
        # wait for its op instead of executing too, so one invoke runs at most one new step.
        if self._planned is not None:
            self._stop(await asyncio.shield(self._planned))
        self._planned = asyncio.get_running_loop().create_future()
        op = await reach()
        self._planned.set_result(op)
        self._stop(op)

    def _execute_sync(self, step_id: str, fn: Callable[[], Any]) -> Op:
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except Exception as exc:
            return _error(step_id, exc)
        return _result(step_id, result)

    async def _execute_async(self, step_id: str, fn: Callable[[], Any]) -> Op:
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return _error(step_id, exc)
        return _result(step_id, result)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _finish(step: Step, result: Any = None, exc: Exception | None = None) -> Op:
    # A reached step wins even when user code swallowed the interrupt and went on.
    if step.op is not None:
        return step.op
    if exc is not None:
        return _error(None, exc)
    return _result(None, result)


def execute_sync(function: Function, invoke: dict[str, Any], clock: Clock | None = None) -> Op:
    """Replay a plain ``def`` handler for one invoke and return the op to answer."""
    step = Step(invoke["steps"], is_async=False, clock=clock)
    try:
        result = function.handler(invoke["event"], step)
    except StepInterrupt:
        return _finish(step)
    except Exception as exc:
        return _finish(step, exc=exc)
    return _finish(step, result)


async def execute_async(function: Function, invoke: dict[str, Any], clock: Clock | None = None) -> Op:
    """Replay an ``async def`` handler for one invoke and return the op to answer."""
    step = Step(invoke["steps"], is_async=True, clock=clock)
    try:
        result = await function.handler(invoke["event"], step)
    except StepInterrupt:
        return _finish(step)
    except Exception as exc:
        return _finish(step, exc=exc)
    return _finish(step, result)


def execute_blocking(function: Function, invoke: dict[str, Any]) -> Op:
    """Replay in this thread: a plain handler directly, an ``async def`` one in a fresh event loop."""
    if is_async(function):
        return asyncio.run(execute_async(function, invoke))
    return execute_sync(function, invoke)


def is_async(function: Function) -> bool:
    """Tell whether the function's handler is an ``async def`` (or an object whose ``__call__`` is)."""
    handler = function.handler
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
