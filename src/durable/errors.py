"""Durable's exception tree.

    DurableError
    ├── ConfigError            a bad environment variable; start-up stops with one line
    ├── ApiError               maps to one HTTP status and a stable ``code``
    │   ├── InvalidInput       400  bad_request        malformed JSON, wrong types, bad durations or cron
    │   ├── Unauthorized       401  unauthorized       missing or wrong signature / admin token
    │   ├── NotFound           404  not_found
    │   ├── Conflict           409  conflict
    │   └── PayloadTooLarge    413  payload_too_large
    └── InvokeError            one failed attempt to call the app (retryable by the worker)

Each class's docstring is its default message.
"""

from __future__ import annotations


class DurableError(Exception):
    """Durable failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(DurableError):
    """A configuration variable is invalid."""


class ApiError(DurableError):
    """The request failed."""

    status = 500
    code = "internal"


class InvalidInput(ApiError):
    """The request is invalid."""

    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    """Missing or invalid credentials."""

    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    """Not found."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The resource is not in a state that allows this."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    """The body is larger than 4 MiB."""

    status = 413
    code = "payload_too_large"


class InvokeError(DurableError):
    """Calling the app failed."""
