"""HMAC-SHA256 signatures of the ``x-durable-signature`` header."""

from __future__ import annotations

import hashlib
import hmac


def sign(body: bytes, key: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of the exact ``body`` bytes, keyed by ``key`` (UTF-8)."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: str, signature: str | None) -> bool:
    """Tell, in constant time, whether ``signature`` is the signature of ``body`` under ``key``."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, key).encode(), signature.strip().lower().encode())
