"""Replay refusal for signed app requests: each accepted v2 nonce is recorded once per app.

The nonce is recorded inside the transaction of the request's own writes (an ingest, a sync): a
request whose writes roll back leaves its nonce unused, and a replay, concurrent or later, finds the
row and is refused before anything is stored. Rows older than 10 minutes are pruned by the
maintenance loop; a signature that old is stale anyway.
"""

from __future__ import annotations

from durable.core.signing import V2_HEADER
from durable.errors import Unauthorized
from durable.store.db import Conn


async def record_nonce(tx: Conn, app_id: str, nonce: str) -> None:
    """Record `nonce` for `app_id` in `tx`, or raise Unauthorized if it was accepted in the last 10 min."""
    if await tx.fetchval("signature_nonce_record", app_id, nonce) is None:
        raise Unauthorized(
            f"{V2_HEADER} n={nonce}: this signed request was already received (replay); "
            "every request needs a fresh nonce"
        )
