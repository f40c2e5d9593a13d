"""What a lost database looks like from Python: the exceptions a Postgres restart, failover or outage
raises, for the loops that must outlive one and for the API that must answer 503 instead of 500.

During a restart a statement meets, depending on the moment: `OSError` (refused, reset, a timeout),
`PostgresConnectionError` (class 08: the connection died mid-statement), the operator-intervention
errors of class 57P (`AdminShutdownError`, `CrashShutdownError`, `CannotConnectNowError` while the
server recovers), `TooManyConnectionsError` (every slot taken while clients reconnect), and asyncpg's
`InterfaceError` "connection is closed" when a transaction's connection died under it (its ROLLBACK
then raises instead of the statement's own error).
"""

from __future__ import annotations

import asyncpg

# What a background loop (claims, cron, maintenance, the change feed) catches, logs and retries after
# a delay: any database failure. A loop that let one escape would stop for good.
RETRYABLE: tuple[type[Exception], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached now (retry later), not that a statement is
    wrong. Follows the exception's cause/context chain: asyncpg's InterfaceError from a dead
    transaction carries the connection error it replaced."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, asyncpg.InterfaceError) and "connection is closed" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
