"""Durable's exception tree.

    DurableError
    ├── ConfigError            a bad environment variable; start-up stops with one line
    ├── ApiError               maps to one HTTP status and a stable ``code``
    │   ├── InvalidInput       400  bad_request        malformed JSON, wrong types, bad durations or cron
    │   ├── Unauthorized       401  unauthorized       missing or wrong signature / admin token
    │   ├── Forbidden          403  forbidden          authenticated or not, this caller may not do this
    │   ├── NotFound           404  not_found
    │   ├── RequestTimeout     408  request_timeout    the body did not arrive within DURABLE_REQUEST_TIMEOUT_MS
    │   ├── Conflict           409  conflict
    │   ├── PayloadTooLarge    413  payload_too_large
    │   ├── TooManyRequests    429  too_many_requests  sign-in attempts over the limit; Retry-After
    │   └── Unavailable        503  unavailable        Postgres is unreachable (restart, failover); Retry-After
    └── InvokeError            one failed attempt to call the app (retryable by the worker); `unreachable`
                               when the app ran nothing (refused, DNS, connect timeout, 502/503/504)

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


class Forbidden(ApiError):
    """This caller may not do this."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """Not found."""

    status = 404
    code = "not_found"


class RequestTimeout(ApiError):
    """The request body did not arrive in time."""

    status = 408
    code = "request_timeout"


class Conflict(ApiError):
    """The resource is not in a state that allows this."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    """The body is larger than 4 MiB."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(ApiError):
    """Too many attempts; retry later."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    """The database is unavailable; retry shortly."""

    status = 503
    code = "unavailable"
    retry_after_s = 2  # a Postgres restart takes seconds; clients should not hammer it meanwhile


class InvokeError(DurableError):
    """Calling the app failed."""

    def __init__(
        self, message: str | None = None, *, unreachable: bool = False, retryable: bool = True
    ) -> None:
        super().__init__(message)
        # True when the app answered nothing and (but for a reset) ran nothing: refused or reset before
        # any answer, DNS, connect timeout, 502/503/504. Such a failure uses up none of the step's
        # attempts; the run waits up to DURABLE_UNREACHABLE_MS (docs/decisions.md, "Attempts").
        self.unreachable = unreachable
        # False when no retry can succeed (the URL points at the engine itself): the run fails now.
        self.retryable = retryable
