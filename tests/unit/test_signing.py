"""core.signing: x-durable-signature against the shared protocol vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.signing import sign, verify

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
