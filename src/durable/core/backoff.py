"""Retry backoff: how long to wait before a failed step's next attempt.

After attempt ``n`` (1-based) of a step failed with a retryable error, the next attempt waits::

    base  = min(1000 ms * 2 ** (n - 1), 300000 ms)        1s, 2s, 4s, 8s … capped at 5 minutes
    delay = base / 2 + rand() * base / 2                  "equal jitter": rand() in [0, 1)

so the delay lies in ``[base / 2, base)``: never less than half the exponential step (retries keep
backing off) and spread over the other half so that runs failing together do not retry together.

An unreachable app (refused, DNS, connect timeout, 502/503/504) uses no attempt; its tries back off the
same way from a 2 s base (so 1-2 s, 2-4 s, ...) up to 30 s, until the app has been unreachable for
``DURABLE_UNREACHABLE_MS``. The cap is low so that runs resume soon after a redeploy ends.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BASE_MS = 1_000
CAP_MS = 300_000
UNREACHABLE_BASE_MS = 2_000
UNREACHABLE_CAP_MS = 30_000


def backoff_ms(attempt: int, rand: Callable[[], float] = random.random) -> int:
    """Milliseconds to wait before attempt ``attempt + 1``, after attempt ``attempt`` failed."""
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    # 2 ** 9 * 1000 already exceeds the cap; bounding the exponent keeps the integer small.
    base = min(BASE_MS << min(attempt - 1, 20), CAP_MS)
    half = base // 2
    return half + int(rand() * (base - half))


def unreachable_backoff_ms(tries: int, rand: Callable[[], float] = random.random) -> int:
    """Milliseconds to wait after the ``tries``-th consecutive try (1-based) found the app unreachable."""
    if tries < 1:
        raise ValueError(f"tries is 1-based, got {tries}")
    base = min(UNREACHABLE_BASE_MS << min(tries - 1, 20), UNREACHABLE_CAP_MS)
    half = base // 2
    return half + int(rand() * (base - half))
