"""Replay refusal for signed app requests: each accepted v2 nonce is recorded once per app.

The nonce is recorded inside the transaction of the request's own writes (an ingest, a sync): a
request whose writes roll back leaves its nonce unused, and a replay, concurrent or later, fails the
recording statement (a unique_violation of signature_nonces' key, migration 0015) before anything is
stored. An ingest sends that statement in the message that opens its transaction (`recording`), so it
costs no round trip of its own. Rows older than 10 minutes are pruned by the maintenance loop; a
signature that old is stale anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from durable.core.signing import V2_HEADER
from durable.errors import Unauthorized
from durable.store.db import Conn, Statement

_KEY = "signature_nonces_pkey"


def recording(app_id: str, nonce: str) -> Statement:
    """The statement recording `nonce`, for a transaction's opening (inside `refusing_replay`)."""
    return ("signature_nonce_record", app_id, nonce)


async def record_nonce(tx: Conn, app_id: str, nonce: str) -> None:
    """Record `nonce` for `app_id` in `tx`, or raise Unauthorized if it was accepted in the last 10 min."""
    with refusing_replay(nonce):
        await tx.execute("signature_nonce_record", app_id, nonce)


@contextmanager
def refusing_replay(nonce: str | None) -> Iterator[None]:
    """Turn the recording statement's failure on a nonce already accepted into Unauthorized."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        if nonce is None or exc.constraint_name != _KEY:
            raise
        raise Unauthorized(
            f"{V2_HEADER} n={nonce}: this signed request was already received (replay); "
            "every request needs a fresh nonce"
        ) from None
