"""Message signatures: ``x-durable-signature-v2`` (fresh, single-use, bound) and the seed's v1.

v2 (docs/protocol.md, "Signing")::

    x-durable-signature-v2: t=<epoch ms>,n=<nonce>[,r=<nonce of the request answered>],s=<mac>
    mac = hex HMAC-SHA256(key, "v2\\n" + sender + "\\n" + t + "\\n" + n + "\\n" + r + "\\n" + body)

The MAC covers the sender (``engine`` or ``app``, never sent: the receiver knows whom it expects), the
time, the nonce, the request an answer answers, and the exact body bytes. A receiver refuses a message
more than 5 minutes from its clock, a MAC under none of its keys, and an answer whose ``r`` is not the
nonce of its request (or a request that carries one). Refusing an already-seen nonce needs a store, so
it is the caller's part (the engine: ``signature_nonces``).

v1: ``x-durable-signature: hex(hmac_sha256(body, key))``. It carries no time and no nonce, so it is
accepted only from workspaces in compat mode.

Everything here is pure: the clock and the nonce store are the caller's. Every comparison of a MAC
runs in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

V1_HEADER = "x-durable-signature"
V2_HEADER = "x-durable-signature-v2"
MAX_SKEW_MS = 5 * 60 * 1000  # a message exactly this far from the receiver's clock is still fresh
NONCE_TTL_MS = 10 * 60 * 1000  # how long a receiver remembers accepted nonces (twice the window)

Sender = Literal["engine", "app"]
Reason = Literal["malformed", "stale", "mac", "reply"]
Mode = Literal["compat", "v2"]
MODES: tuple[Mode, ...] = ("compat", "v2")

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIME = re.compile(r"[0-9]{1,16}")


@dataclass(frozen=True)
class Keys:
    """A workspace's keys and signature mode: what signing and verifying its messages needs.

    ``previous`` is set while a key is rotated: both keys are accepted, and the engine signs with the
    previous one until it is removed, so apps can deploy the new key at their pace.
    """

    current: str
    previous: str | None = None
    mode: Mode = "compat"

    @property
    def signing(self) -> str:
        """The key the engine signs with."""
        return self.previous or self.current

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every key a MAC may be made with."""
        return (self.current,) if self.previous is None else (self.current, self.previous)


def sign(body: bytes, key: str) -> str:
    """The v1 signature of ``body`` under ``key``: 64 lowercase hex characters."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, key: str, signature: str | None) -> bool:
    """True when ``signature`` is ``body``'s v1 signature under ``key``.

    A missing or malformed signature (anything but 64 hex digits) is simply not valid. Upper-case
    hex is accepted: it names the same bytes.
    """
    if signature is None or not _HEX_SHA256.fullmatch(signature):
        return False
    return hmac.compare_digest(sign(body, key), signature.lower())


def verify_any(body: bytes, keys: Sequence[str], signature: str | None) -> bool:
    """True when ``signature`` is a v1 signature of ``body`` under one of ``keys`` (rotation)."""
    return any([verify(body, key, signature) for key in keys])  # every key tried: no early exit


def new_nonce() -> str:
    """A fresh nonce: 16 random bytes as 32 hex digits."""
    return secrets.token_hex(16)


def mac_v2(key: str, sender: Sender, t: int, n: str, r: str, body: bytes) -> str:
    """The v2 MAC, lowercase hex; ``r`` is ``""`` for a request."""
    prefix = f"v2\n{sender}\n{t}\n{n}\n{r}\n".encode()
    return hmac.new(key.encode("utf-8"), prefix + body, hashlib.sha256).hexdigest()


def sign_v2(key: str, sender: Sender, t: int, n: str, r: str, body: bytes) -> str:
    """The ``x-durable-signature-v2`` header value; ``r`` is ``""`` for a request (and then not sent)."""
    s = mac_v2(key, sender, t, n, r, body)
    return f"t={t},n={n},r={r},s={s}" if r else f"t={t},n={n},s={s}"


@dataclass(frozen=True)
class SignatureV2:
    """A parsed v2 header: well-formed, not yet verified."""

    t: int
    n: str
    r: str | None
    s: str


def parse_v2(header: str | None) -> SignatureV2 | None:
    """The header's fields, or None when it is missing or malformed.

    Well-formed: comma-separated ``key=value`` pairs, each of ``t`` (decimal epoch ms), ``n`` (16-64 of
    ``[A-Za-z0-9_-]``), ``s`` (64 hex digits) exactly once and ``r`` (a nonce) at most once, nothing else.
    """
    if not header:
        return None
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, eq, value = part.partition("=")
        if not eq or key not in ("t", "n", "r", "s") or key in fields:
            return None
        fields[key] = value
    t, n, r, s = fields.get("t"), fields.get("n"), fields.get("r"), fields.get("s")
    if t is None or not _TIME.fullmatch(t) or n is None or not _NONCE.fullmatch(n):
        return None
    if s is None or not _HEX_SHA256.fullmatch(s) or (r is not None and not _NONCE.fullmatch(r)):
        return None
    return SignatureV2(int(t), n, r, s.lower())


@dataclass(frozen=True)
class Verdict:
    """What verifying a v2 header found: ``reason`` is None when the message is accepted."""

    reason: Reason | None
    signature: SignatureV2 | None  # None only when malformed

    @property
    def ok(self) -> bool:
        return self.reason is None


def verify_v2(
    header: str | None,
    body: bytes,
    keys: Sequence[str],
    sender: Sender,
    now_ms: int,
    reply_to: str | None,
) -> Verdict:
    """Verify a v2 header on ``body`` from ``sender`` at the receiver's clock ``now_ms``.

    ``keys``: every key the workspace accepts (two while rotating). ``reply_to``: the nonce of the
    request this message answers, or None for a request (which must then carry no ``r``). Checks run
    malformed → mac → stale → reply, as in every SDK: a message not made with the key learns only
    "mac". The nonce store (replay) is the caller's.
    """
    signature = parse_v2(header)
    if signature is None:
        return Verdict("malformed", None)
    r = signature.r or ""
    macs = [mac_v2(key, sender, signature.t, signature.n, r, body) for key in keys]
    if not any([hmac.compare_digest(mac, signature.s) for mac in macs]):
        return Verdict("mac", signature)
    if abs(now_ms - signature.t) > MAX_SKEW_MS:
        return Verdict("stale", signature)
    if signature.r != reply_to:
        return Verdict("reply", signature)
    return Verdict(None, signature)


def describe(verdict: Verdict, now_ms: int, reply_to: str | None) -> str:
    """A sentence naming why a v2 header was refused, for a 401 or an attempt error."""
    sig = verdict.signature
    if verdict.reason == "malformed" or sig is None:
        return (
            f"{V2_HEADER} is missing or malformed (expected t=<epoch ms>,n=<nonce of 16-64 "
            "[A-Za-z0-9_-]>[,r=<nonce>],s=<64 hex digits>)"
        )
    if verdict.reason == "stale":
        age_s = (now_ms - sig.t) / 1000
        when = f"{age_s:.0f} s old" if age_s >= 0 else f"{-age_s:.0f} s in the future"
        return (
            f"{V2_HEADER} t={sig.t} is {when}: a signature must be within 5 minutes of the receiver's "
            "clock (stale; check the clock or re-sign the message)"
        )
    if verdict.reason == "mac":
        return f"{V2_HEADER} s= does not match the body under the workspace's signing key (mac)"
    if reply_to is None:
        return f"{V2_HEADER} carries r={sig.r}, but a request must not (reply)"
    return f"{V2_HEADER} r={sig.r or '(none)'} answers another request than n={reply_to} (reply)"
