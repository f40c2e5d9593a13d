"""Shared vocabulary: run states, ops and JSON shapes. No behaviour."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict

JSON = Any
"""Any value that round-trips through JSON."""

MAX_BODY = 4 * 1024 * 1024
"""Requests, answers and step outputs over 4 MiB are refused (DESIGN.md §3)."""


class RunStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunActivity(StrEnum):
    """What an active run is doing; null once the run has ended."""

    EXECUTING = "executing"  # claimed by a worker, an invoke is in flight
    QUEUED = "queued"  # due now, waiting for a worker
    WAITING = "waiting"  # parked in wait_for_event
    SLEEPING = "sleeping"  # parked in a durable sleep
    SCHEDULED = "scheduled"  # due later by the engine's decision (retry backoff, throttle, debounce)


class EventIn(TypedDict):
    """An event as accepted by ``POST /e`` after validation."""

    id: str | None
    name: str
    data: dict[str, Any]
    ts: int | None
    idempotencyKey: NotRequired[str]


class StepOp(TypedDict):
    op: Literal["step"]
    id: str
    data: JSON


class SleepOp(TypedDict):
    op: Literal["sleep"]
    id: str
    until_ms: int  # epoch milliseconds


class WaitOp(TypedDict):
    op: Literal["wait"]
    id: str
    event: str
    match: dict[str, Any] | None
    until_ms: int  # epoch milliseconds


class DoneOp(TypedDict):
    op: Literal["done"]
    data: JSON


class ErrorOp(TypedDict):
    op: Literal["error"]
    id: str | None
    message: str
    retryable: bool


class InvokeOp(TypedDict):
    op: Literal["invoke"]
    id: str
    function: str
    data: dict[str, Any]
    until_ms: int | None  # epoch milliseconds; None: no timeout


class SendOp(TypedDict):
    op: Literal["send"]
    id: str
    events: list[EventIn]


class ParallelOp(TypedDict):
    """Several ops reached at once: steps, step errors, invokes and sends, in the order reached."""

    op: Literal["parallel"]
    ops: list[StepOp | ErrorOp | InvokeOp | SendOp]


class CheckpointStep(TypedDict):
    id: str
    data: Any


class CheckpointOp(TypedDict):
    """Consecutive steps executed in one invoke, then the op that stopped them (None: a bound did)."""

    op: Literal["checkpoint"]
    steps: list[CheckpointStep]
    then: SleepOp | WaitOp | DoneOp | ErrorOp | InvokeOp | SendOp | ParallelOp | None


Op = StepOp | SleepOp | WaitOp | DoneOp | ErrorOp | InvokeOp | SendOp | ParallelOp | CheckpointOp
