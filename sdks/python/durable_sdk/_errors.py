"""Exceptions of the Durable SDK.

Exception
 ├── DurableError        the engine refused a Client request or answered badly
 ├── NonRetryableError   raised by user code: fail the run now, no retries
 │    └── InvokeError    step.invoke: the child run did not complete (failed, timeout, cancelled, not_found)
 └── ValueError
      └── SignatureError a v2 signature was refused, for a reason (malformed, stale, mac, reply, replay)
BaseException
 └── StepInterrupt       replay control flow: a step was planned, stop the handler
"""

from __future__ import annotations

from typing import Any, Literal

InvokeReason = Literal["failed", "timeout", "cancelled", "not_found"]


class DurableError(Exception):
    """The engine could not be reached, refused a request, or sent an answer that fails verification."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NonRetryableError(Exception):
    """Raise from a handler or a step to fail the run at once instead of retrying the step."""


class InvokeError(NonRetryableError):
    """``step.invoke`` raised it: the child run did not complete; catch it like any other error.

    ``reason`` is ``failed`` (``message`` is the child's error), ``timeout`` (the invoke's timeout passed
    first), ``cancelled`` or ``not_found`` (no function of that id; ``run_id`` is then None).
    Uncaught, it fails the run at once: the outcome is memoized, so a retry would meet it again.
    """

    def __init__(self, message: str, reason: InvokeReason, run_id: str | None, function_id: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.run_id = run_id
        self.function_id = function_id

    def __repr__(self) -> str:
        return f"InvokeError({self.message!r}, reason={self.reason!r}, run_id={self.run_id!r})"


class StepInterrupt(BaseException):
    """Stops the handler after it reached its next new step; carries the op answered to the engine.

    It derives from ``BaseException`` so that ``except Exception`` in user code cannot swallow it.
    Code that catches ``BaseException`` must re-raise it.
    """

    def __init__(self, op: dict[str, Any]) -> None:
        super().__init__(op.get("id"))
        self.op = op


class SignatureError(ValueError):
    """A v2 signature was refused; ``reason`` is malformed | stale | mac | reply | replay."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"x-durable-signature-v2 refused ({reason}): {detail}")
        self.reason = reason
