"""Precise types for handlers: annotate ``step`` with :class:`AsyncStep` (``async def`` handlers) or
:class:`SyncStep` (plain ``def`` ones) and a type checker knows what each call returns.

The one ``Step`` class serves both styles at run time (its calls return awaitables in an ``async def``
handler and values in a plain one), so its own signatures say ``Any``; these protocols say it precisely::

    async def charge(event: durable_sdk.Event, step: durable_sdk.AsyncStep) -> int:
        total: int = await step.run("total", lambda: 42)          # run[T]: Awaitable[T]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypedDict, TypeVar, overload

from ._options import Duration, Function
from ._wire import SentEvent

T = TypeVar("T")


class Event(TypedDict):
    """The event a handler receives (``data`` is a list of events for a batch run)."""

    id: str
    name: str
    data: Any
    ts: int


class AsyncStep(Protocol):
    """``step`` in an ``async def`` handler: every call is awaited."""

    traceparent: str | None

    @overload
    def run(self, id: str, fn: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...
    @overload
    def run(self, id: str, fn: Callable[[], T]) -> Awaitable[T]: ...
    def sleep(self, id: str, duration: Duration) -> Awaitable[None]: ...
    def wait_for_event(
        self, id: str, *, event: str, match: dict[str, Any] | None = None, timeout: Duration
    ) -> Awaitable[Event | None]: ...
    def invoke(
        self,
        id: str,
        *,
        function: Function | str,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Awaitable[Any]: ...
    def send_event(self, id: str, events: SentEvent | Sequence[SentEvent]) -> Awaitable[list[str]]: ...
    def parallel(self, branches: Sequence[Callable[[], Awaitable[T]]]) -> Awaitable[list[T]]: ...


class SyncStep(Protocol):
    """``step`` in a plain ``def`` handler: every call returns its value."""

    traceparent: str | None

    def run(self, id: str, fn: Callable[[], T]) -> T: ...
    def sleep(self, id: str, duration: Duration) -> None: ...
    def wait_for_event(
        self, id: str, *, event: str, match: dict[str, Any] | None = None, timeout: Duration
    ) -> Event | None: ...
    def invoke(
        self,
        id: str,
        *,
        function: Function | str,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any: ...
    def send_event(self, id: str, events: SentEvent | Sequence[SentEvent]) -> list[str]: ...
    def parallel(self, branches: Sequence[Callable[[], T]]) -> list[T]: ...
