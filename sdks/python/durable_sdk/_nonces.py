"""The served endpoint's memory of accepted invoke nonces: a replayed invoke is refused, not run again."""

from __future__ import annotations

import threading
from collections import OrderedDict

KEEP_MS = 10 * 60 * 1000  # twice the freshness window: a nonce is remembered while its message can be fresh
MAX_NONCES = 100_000  # ~10 MB; about 160 invokes a second for 10 minutes in one process


class NonceStore:
    """Nonces accepted in this process within the last ``keep_ms``, at most ``max_size`` of them.

    Only authentic, fresh invokes reach it (the MAC and the time are checked first), so only the
    engine can fill it. When it is full of unexpired nonces it refuses new ones rather than forget one
    that could still be replayed: the caller answers 503, which the engine retries.
    Thread-safe: WSGI servers and ``asyncio.to_thread`` call it from several threads.
    """

    def __init__(self, keep_ms: int = KEEP_MS, max_size: int = MAX_NONCES) -> None:
        self.keep_ms = keep_ms
        self.max_size = max_size
        self._expiry: OrderedDict[str, int] = OrderedDict()  # nonce -> forget after (ms), in accept order
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def accept(self, nonce: str, now_ms: int) -> bool | None:
        """Remember ``nonce``: ``True`` if new, ``False`` if seen within ``keep_ms``, ``None`` if full."""
        with self._lock:
            self._prune(now_ms)
            if self._expiry.get(nonce, now_ms) > now_ms:
                return False
            if len(self._expiry) >= self.max_size:
                return None
            self._expiry.pop(nonce, None)  # expired but not yet pruned (the clock went back)
            self._expiry[nonce] = now_ms + self.keep_ms
            return True

    def _prune(self, now_ms: int) -> None:
        # Accept order is expiry order while the clock moves forward; after a jump back an entry may
        # outlive its time a little, which errs on the side of refusing.
        while self._expiry:
            nonce, expiry = next(iter(self._expiry.items()))
            if expiry > now_ms:
                return
            del self._expiry[nonce]
