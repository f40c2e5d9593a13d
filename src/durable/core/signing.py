"""Request and response signatures: ``x-durable-signature``.

The signature is the lowercase hex HMAC-SHA256 of the exact body bytes, keyed by the signing key's
UTF-8 bytes. It covers the bytes as sent, never a re-serialisation, so callers must sign and verify
the raw body. Verification runs in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def sign(body: bytes, key: str) -> str:
    """Return the signature of ``body`` under ``key``: 64 lowercase hex characters."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: str, signature: str | None) -> bool:
    """True when ``signature`` is ``body``'s signature under ``key``.

    A missing or malformed signature (anything but 64 hex digits) is simply not valid. Upper-case
    hex is accepted: it names the same bytes.
    """
    if signature is None or not _HEX_SHA256.fullmatch(signature):
        return False
    return hmac.compare_digest(sign(body, key), signature.lower())
