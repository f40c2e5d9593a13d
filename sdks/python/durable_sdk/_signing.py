"""Message signatures: v2 (``x-durable-signature-v2``: fresh, single-use, bound to the request answered)
and the seed's v1 (``x-durable-signature``: the body alone), as docs/protocol.md "Signing" defines them.

v2 header: ``t=<epoch ms>,n=<nonce>[,r=<nonce of the request answered>],s=<mac>`` where ``mac`` is the
lowercase hex HMAC-SHA256 (keyed by the key's UTF-8 bytes) of
``"v2\\n" + sender + "\\n" + t + "\\n" + n + "\\n" + r + "\\n" + body``. ``sender`` is not sent: the
receiver knows whom it expects ("engine" or "app"), so a message cannot be turned around.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import NamedTuple

from ._errors import SignatureError

V1_HEADER = "x-durable-signature"
V2_HEADER = "x-durable-signature-v2"
FRESH_MS = 5 * 60 * 1000  # |receiver's clock - t| may be at most this, either way (clock skew)
SENDERS = ("engine", "app")

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_EPOCH_MS = re.compile(r"0|[1-9][0-9]{0,15}")  # canonical digits (the MAC covers t as written); no sign
_MAC = re.compile(r"[0-9a-fA-F]{64}")


def sign(body: bytes, key: str) -> str:
    """Return the v1 signature: the lowercase hex HMAC-SHA256 of the exact ``body``, keyed by ``key``."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: str, signature: str | None) -> bool:
    """Tell, in constant time, whether ``signature`` is the v1 signature of ``body`` under ``key``."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, key).encode(), signature.strip().lower().encode())


class SignatureV2(NamedTuple):
    """A parsed ``x-durable-signature-v2`` header; ``r`` is ``None`` on a request."""

    t: int
    n: str
    r: str | None
    s: str


def new_nonce() -> str:
    """A fresh nonce: 16 random bytes as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def mac_v2(body: bytes, key: str, sender: str, t: int, n: str, r: str = "") -> str:
    """The v2 MAC over sender, time, nonce, reply-to (``""`` for a request) and the exact body."""
    signed = f"v2\n{sender}\n{t}\n{n}\n{r}\n".encode() + body
    return hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()


def sign_v2(body: bytes, key: str, sender: str, t: int, n: str | None = None, r: str = "") -> str:
    """Return the ``x-durable-signature-v2`` header value for ``body`` sent by ``sender`` at ``t`` (epoch ms).

    ``n`` defaults to a fresh nonce; ``r`` is the nonce of the request this message answers, empty for a
    request. Raises ``ValueError`` naming the argument that is not of the protocol's form.
    """
    n = new_nonce() if n is None else n
    if sender not in SENDERS:
        raise ValueError(f"sender must be one of {SENDERS}, got {sender!r}")
    if not isinstance(t, int) or isinstance(t, bool) or not _EPOCH_MS.fullmatch(str(t)):
        raise ValueError(f"t must be non-negative integer epoch milliseconds, got {t!r}")
    if not _NONCE.fullmatch(n):
        raise ValueError(f"n must be 16 to 64 characters of [A-Za-z0-9_-], got {n!r}")
    if r and not _NONCE.fullmatch(r):
        raise ValueError(f"r must be empty or a nonce (16 to 64 characters of [A-Za-z0-9_-]), got {r!r}")
    reply = f",r={r}" if r else ""
    return f"t={t},n={n}{reply},s={mac_v2(body, key, sender, t, n, r)}"


def parse_v2(header: str | None) -> SignatureV2:
    """Parse an ``x-durable-signature-v2`` value; raises :class:`SignatureError` (malformed) naming the part.

    Fields are ``name=value`` separated by commas, each at most once, in any order; ``t``, ``n`` and
    ``s`` are required, ``r`` only on answers.
    """
    if not header or not header.strip():
        raise SignatureError("malformed", "the header is missing or empty")
    fields: dict[str, str] = {}
    for part in header.strip().split(","):
        name, equals, value = part.strip().partition("=")
        if not equals or name not in ("t", "n", "r", "s"):
            raise SignatureError("malformed", f"{part!r} is not one of t=, n=, r=, s=")
        if name in fields:
            raise SignatureError("malformed", f"{name}= appears twice")
        fields[name] = value
    for name in ("t", "n", "s"):
        if name not in fields:
            raise SignatureError("malformed", f"{name}= is missing")
    if not _EPOCH_MS.fullmatch(fields["t"]):
        raise SignatureError("malformed", f"t must be integer epoch milliseconds, got {fields['t']!r}")
    for name in ("n", "r"):
        if name in fields and not _NONCE.fullmatch(fields[name]):
            raise SignatureError(
                "malformed", f"{name} must be 16 to 64 characters of [A-Za-z0-9_-], got {fields[name]!r}"
            )
    if not _MAC.fullmatch(fields["s"]):
        raise SignatureError("malformed", "s must be 64 hex digits")
    return SignatureV2(int(fields["t"]), fields["n"], fields.get("r"), fields["s"].lower())


def verify_v2(
    body: bytes,
    keys: str | Sequence[str],
    header: str | None,
    sender: str,
    now_ms: int,
    reply_to: str | None = None,
) -> SignatureV2:
    """Check a v2 signature of ``body`` from ``sender``, at the receiver's clock ``now_ms``.

    ``keys`` are tried in order (two while a key is rotated). ``reply_to`` is the nonce of the request
    this message answers, ``None`` when verifying a request (which then must carry no ``r``). Checks run
    in this order, each only once the previous held: the form (malformed), the MAC under some key (mac),
    the time (stale), the binding (reply); nothing of an unauthenticated message is judged but its form.
    Returns the parsed signature (its nonce is for the caller's replay check) or raises
    :class:`SignatureError` with the reason.
    """
    signature = parse_v2(header)
    candidates = [keys] if isinstance(keys, str) else list(keys)
    expected = signature.r or ""
    matched = False
    for key in candidates:  # every key is tried: which key matched is not told by the timing
        mac = mac_v2(body, key, sender, signature.t, signature.n, expected)
        matched |= hmac.compare_digest(mac.encode(), signature.s.encode())
    if not matched:
        raise SignatureError("mac", f"no signing key gives this MAC for a message from the {sender}")
    skew = now_ms - signature.t
    if abs(skew) > FRESH_MS:
        when = "old" if skew > 0 else "ahead of this clock"
        raise SignatureError("stale", f"t={signature.t} is {abs(skew)} ms {when}; at most {FRESH_MS} allowed")
    if reply_to is None and signature.r is not None:
        raise SignatureError("reply", "a request must not carry r= (this is an answer replayed as a request)")
    if reply_to is not None and signature.r != reply_to:
        got = "no r=" if signature.r is None else f"r={signature.r}"
        raise SignatureError("reply", f"expected an answer to n={reply_to}, got {got}")
    return signature
