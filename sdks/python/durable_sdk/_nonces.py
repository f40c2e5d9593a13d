"""The served endpoint's memory of accepted invoke nonces: a replayed invoke is refused, not run again."""

from __future__ import annotations

import threading
from collections import OrderedDict

KEEP_MS = 10 * 60 * 1000  # twice the freshness window: a nonce is remembered while its message can be fresh
MAX_NONCES = 100_000  # ~10 MB


class NonceStore:
    """Nonces accepted in this process within the last ``keep_ms``, at most ``max_size`` of them.

    Only authentic, fresh invokes reach it (the MAC and the time are checked first), so only the
    engine can fill it. When it is full, the oldest nonce is dropped and its message's ``t`` becomes a
    floor: from then on a message signed at or before the floor is refused too, since it could be the
    replay of a dropped nonce. The engine stamps ``t`` as it sends, so a floor costs only invokes that
    were overtaken in transit by ``max_size`` newer ones; a steady 2,000 invokes a second keeps the
    floor about 50 s behind (the TypeScript and PHP SDKs' stores work the same way). Before, a full
    store answered 503 to every invoke until nonces expired: at most ~166 invokes a second, sustained.
    Thread-safe: WSGI servers and ``asyncio.to_thread`` call it from several threads.
    """

    def __init__(self, keep_ms: int = KEEP_MS, max_size: int = MAX_NONCES) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.keep_ms = keep_ms
        self.max_size = max_size
        # nonce -> (the message's t, forget after (ms)), in accept order
        self._entries: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._floor: int | None = None  # messages signed at or before it are refused (see above)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def accept(self, nonce: str, t: int, now_ms: int) -> bool:
        """Remember ``nonce`` of a message signed at ``t``: ``True`` if new, ``False`` if seen within
        ``keep_ms`` or signed at or before the floor of dropped nonces."""
        with self._lock:
            self._prune(now_ms)
            held = self._entries.get(nonce)
            if (held is not None and held[1] > now_ms) or (self._floor is not None and t <= self._floor):
                return False
            self._entries.pop(nonce, None)  # expired but not yet pruned (the clock went back)
            while len(self._entries) >= self.max_size:
                _, (dropped_t, _) = self._entries.popitem(last=False)
                self._floor = dropped_t if self._floor is None else max(self._floor, dropped_t)
            self._entries[nonce] = (t, now_ms + self.keep_ms)
            return True

    def _prune(self, now_ms: int) -> None:
        # Accept order is expiry order while the clock moves forward; after a jump back an entry may
        # outlive its time a little, which errs on the side of refusing. An expired nonce's message is
        # stale: forgetting it lets nothing through.
        entries = self._entries
        while entries:
            nonce, (_, expiry) = next(iter(entries.items()))
            if expiry > now_ms:
                return
            del entries[nonce]
