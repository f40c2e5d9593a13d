"""core.signing: x-durable-signature (v1) and x-durable-signature-v2 against the shared vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.signing import (
    Sender,
    describe,
    mac_v2,
    new_nonce,
    parse_v2,
    sign,
    sign_v2,
    verify,
    verify_any,
    verify_v2,
)

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "signature-vectors.json").read_text(encoding="utf-8")
)["vectors"]


def test_the_vector_file_is_not_empty() -> None:
    assert len(VECTORS) >= 5


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: repr(v["body"][:30]))
def test_sign_matches_vector(vector: dict[str, Any]) -> None:
    assert sign(vector["body"].encode("utf-8"), vector["key"]) == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: repr(v["body"][:30]))
def test_verify_accepts_vector(vector: dict[str, Any]) -> None:
    assert verify(vector["body"].encode("utf-8"), vector["key"], vector["signature"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: repr(v["body"][:30]))
def test_verify_refuses_other_key_or_body(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    assert not verify(body, vector["key"] + "x", vector["signature"])
    assert not verify(body + b" ", vector["key"], vector["signature"])


def test_whitespace_changes_the_signature() -> None:
    assert sign(b'{"op":"done"}', "k") != sign(b'{ "op": "done" }', "k")


def test_uppercase_hex_names_the_same_signature() -> None:
    assert verify(b"x", "k", sign(b"x", "k").upper())


@pytest.mark.parametrize(
    "signature",
    [None, "", "abc", "z" * 64, sign(b"x", "k")[:-1], sign(b"x", "k") + "0", " " + sign(b"x", "k")],
)
def test_verify_refuses_missing_or_malformed(signature: str | None) -> None:
    assert not verify(b"x", "k", signature)


@given(st.binary(max_size=512), st.text(min_size=1, max_size=64))
def test_sign_then_verify(body: bytes, key: str) -> None:
    signature = sign(body, key)
    assert len(signature) == 64 and signature == signature.lower()
    assert verify(body, key, signature)


# --- v2: spec/conformance/signature-v2-vectors.json, the same file the three SDKs run ---

V2: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "spec" / "conformance" / "signature-v2-vectors.json").read_text(
        encoding="utf-8"
    )
)


def test_the_v2_vector_file_covers_every_reason() -> None:
    assert len(V2["sign"]) >= 5
    reasons = {case.get("reason") for case in V2["verify"]}
    assert reasons == {None, "malformed", "stale", "mac", "reply"}


@pytest.mark.parametrize("vector", V2["sign"], ids=lambda v: v["about"])
def test_sign_v2_makes_the_exact_header(vector: dict[str, Any]) -> None:
    body = vector["body"].encode("utf-8")
    args = (vector["key"], vector["sender"], vector["t"], vector["n"], vector["r"], body)
    assert mac_v2(*args) == vector["mac"]
    assert sign_v2(*args) == vector["header"]


@pytest.mark.parametrize("case", V2["verify"], ids=lambda c: c["about"])
def test_verify_v2_vector(case: dict[str, Any]) -> None:
    vector = V2["sign"][case["vector"]]
    verdict = verify_v2(
        case.get("header", vector["header"]),
        case.get("body", vector["body"]).encode("utf-8"),
        case["keys"],
        case.get("sender", vector["sender"]),
        case["now"],
        case["replyTo"],
    )
    assert verdict.ok is case["ok"]
    assert verdict.reason == case.get("reason")
    if case["ok"]:
        assert verdict.signature is not None and verdict.signature.n == vector["n"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        ",",
        "t=1,n=n0123456789abcdef,s=" + "a" * 64 + ",s=" + "a" * 64,  # a field twice
        "t=1,n=n0123456789abcdef,x=1,s=" + "a" * 64,  # an unknown field
        "t=1,n=n0123456789abcdef,r=,s=" + "a" * 64,  # an empty r
        "t=-1,n=n0123456789abcdef,s=" + "a" * 64,
        "t=1,n=" + "n" * 65 + ",s=" + "a" * 64,  # a nonce too long
        "t=1,n=n0123456789abcde!,s=" + "a" * 64,
        "t=1,n=n0123456789abcdef,s=" + "a" * 63,
        " t=1,n=n0123456789abcdef,s=" + "a" * 64,
    ],
)
def test_parse_v2_refuses_malformed(header: str | None) -> None:
    assert parse_v2(header) is None
    assert verify_v2(header, b"", ["k"], "app", 1, None).reason == "malformed"


def test_new_nonce_is_fresh_and_well_formed() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(parse_v2(f"t=1,n={n},s={'0' * 64}") is not None for n in nonces)


@given(st.binary(max_size=256), st.text(min_size=1, max_size=32), st.sampled_from(["app", "engine"]))
def test_sign_v2_then_verify_v2(body: bytes, key: str, sender: Sender) -> None:
    request_nonce = new_nonce()
    header = sign_v2(key, sender, 1_767_225_600_000, new_nonce(), request_nonce, body)
    assert verify_v2(header, body, ["other", key], sender, 1_767_225_600_000, request_nonce).ok
    other: Sender = "engine" if sender == "app" else "app"
    assert verify_v2(header, body, [key], other, 1_767_225_600_000, request_nonce).reason == "mac"


def test_describe_names_the_reason_and_the_field() -> None:
    header = sign_v2("k", "app", 1_000_000_000_000, "n0123456789abcdef", "", b"{}")
    stale = verify_v2(header, b"{}", ["k"], "app", 1_000_000_360_000, None)
    assert stale.reason == "stale"
    assert "360 s old" in describe(stale, 1_000_000_360_000, None) and "x-durable-signature-v2" in describe(
        stale, 1_000_000_360_000, None
    )
    reply = verify_v2(header, b"{}", ["k"], "app", 1_000_000_000_000, "another-nonce-123")
    assert "(reply)" in describe(reply, 1_000_000_000_000, "another-nonce-123")


def test_verify_any_accepts_either_key() -> None:
    assert verify_any(b"x", ["old", "new"], sign(b"x", "new"))
    assert verify_any(b"x", ["old", "new"], sign(b"x", "old"))
    assert not verify_any(b"x", ["old", "new"], sign(b"x", "gone"))
