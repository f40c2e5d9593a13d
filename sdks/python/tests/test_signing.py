"""Every vector of spec/conformance/signature-vectors.json (v1) and signature-v2-vectors.json (v2), through
sign/parse/verify; v1 also through both apps; the served endpoint's nonce memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _signing, _step
from durable_sdk._nonces import NonceStore

VECTORS = json.loads(
    (Path(__file__).resolve().parents[3] / "spec/conformance/signature-vectors.json").read_text()
)
VECTOR_IDS = [f"{i}:{v['key']}" for i, v in enumerate(VECTORS["vectors"])]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
def test_vector(vector: dict[str, str]) -> None:
    body = vector["body"].encode()
    assert durable_sdk.sign(body, vector["key"]) == vector["signature"]
    assert durable_sdk.verify(body, vector["key"], vector["signature"])
    assert durable_sdk.verify(body, vector["key"], vector["signature"].upper())  # hex case is not significant
    assert not durable_sdk.verify(body + b" ", vector["key"], vector["signature"])
    assert not durable_sdk.verify(body, vector["key"] + "x", vector["signature"])
    assert not durable_sdk.verify(body, vector["key"], vector["signature"][:-1] + "0")


@pytest.mark.parametrize("signature", [None, "", "not-hex", "é" * 64])
def test_verify_refuses_missing_and_garbage(signature: str | None) -> None:
    assert not durable_sdk.verify(b"{}", "k", signature)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=VECTOR_IDS)
def test_apps_refuse_a_v1_signature_alone_and_sign_answers_v1(
    vector: dict[str, str], kind: str, asgi_request: Any, wsgi_request: Any
) -> None:
    serve, request = (
        (durable_sdk.serve, asgi_request) if kind == "asgi" else (durable_sdk.serve_wsgi, wsgi_request)
    )
    app = serve([], signing_key=vector["key"])
    body = vector["body"].encode()
    for headers in ({"x-durable-signature": vector["signature"]}, {}):
        answer = request(app, body=body, headers=headers)
        assert answer.status == 401
        assert "this app requires signatures v2" in answer.json()["error"]
        # every answer carries v1 too, for an engine in compat mode that checks only v1
        assert durable_sdk.verify(answer.body, vector["key"], answer.headers["x-durable-signature"])


# Signatures v2: every vector of spec/conformance/signature-v2-vectors.json.
V2 = json.loads(
    (Path(__file__).resolve().parents[3] / "spec/conformance/signature-v2-vectors.json").read_text()
)


@pytest.mark.parametrize("vector", V2["sign"], ids=[v["about"] for v in V2["sign"]])
def test_v2_sign_vector(vector: dict[str, Any]) -> None:
    body = vector["body"].encode()
    args = (body, vector["key"], vector["sender"], vector["t"])
    assert _signing.mac_v2(*args, vector["n"], vector["r"]) == vector["mac"]
    assert durable_sdk.sign_v2(*args, n=vector["n"], r=vector["r"]) == vector["header"]
    parsed = _signing.parse_v2(vector["header"])
    assert parsed == (vector["t"], vector["n"], vector["r"] or None, vector["mac"])


@pytest.mark.parametrize("case", V2["verify"], ids=[c["about"] for c in V2["verify"]])
def test_v2_verify_vector(case: dict[str, Any]) -> None:
    vector = V2["sign"][case["vector"]]
    body = case.get("body", vector["body"]).encode()
    header = case.get("header", vector["header"])
    sender = case.get("sender", vector["sender"])
    verify = lambda: durable_sdk.verify_v2(  # noqa: E731
        body, case["keys"], header, sender, case["now"], reply_to=case["replyTo"]
    )
    if case["ok"]:
        assert verify().n == vector["n"]
    else:
        with pytest.raises(durable_sdk.SignatureError) as refused:
            verify()
        assert refused.value.reason == case["reason"]
        assert str(refused.value).startswith(f"x-durable-signature-v2 refused ({case['reason']}): ")


def test_v2_vectors_cover_every_reason() -> None:
    reasons = {case.get("reason") for case in V2["verify"]}
    assert reasons == {None, "malformed", "stale", "mac", "reply"}


def test_v2_new_nonce_is_32_lowercase_hex_digits_and_fresh() -> None:
    nonces = {_signing.new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 32 and set(n) <= set("0123456789abcdef") for n in nonces)
    header = durable_sdk.sign_v2(b"{}", "k", "app", 1767225600000)  # n defaults to a fresh nonce
    assert len(_signing.parse_v2(header).n) == 32


@pytest.mark.parametrize(
    "header",
    [
        None,
        "   ",
        "t=1,n=n0123456789abcdef",  # no s
        "t=1,n=n0123456789abcdef,s=" + "0" * 63,  # s too short
        "t=1,n=n0123456789abcdef,s=" + "g" * 64,  # s not hex
        "t=-1,n=n0123456789abcdef,s=" + "0" * 64,  # t signed
        "t=1.5,n=n0123456789abcdef,s=" + "0" * 64,  # t not an integer
        "t=0042,n=n0123456789abcdef,s=" + "0" * 64,  # t not canonical
        "t=1,t=2,n=n0123456789abcdef,s=" + "0" * 64,  # t twice
        "t=1,n=n0123456789abcdef,x=1,s=" + "0" * 64,  # unknown field
        "t=1,n=n0123456789abcdef,r=,s=" + "0" * 64,  # empty r
        "t=1,n=" + "a" * 65 + ",s=" + "0" * 64,  # nonce too long
        "t=1,n=n0123456789abcde!,s=" + "0" * 64,  # nonce outside the alphabet
        "t=1;n=n0123456789abcdef;s=" + "0" * 64,  # wrong separator
    ],
)
def test_v2_parse_refuses_malformed_headers(header: str | None) -> None:
    with pytest.raises(durable_sdk.SignatureError) as refused:
        _signing.parse_v2(header)
    assert refused.value.reason == "malformed"


def test_v2_parse_takes_fields_in_any_order_and_mac_in_any_case() -> None:
    mac = "AB" * 32
    parsed = _signing.parse_v2(f" s={mac},r=rrrrrrrrrrrrrrrr,n=n0123456789abcdef,t=42 ")
    assert parsed == (42, "n0123456789abcdef", "rrrrrrrrrrrrrrrr", mac.lower())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sender": "proxy"}, "sender"),
        ({"t": -1}, "t"),
        ({"t": True}, "t"),
        ({"n": "short"}, "n"),
        ({"r": "bad nonce with spaces"}, "r"),
    ],
)
def test_v2_sign_refuses_what_the_protocol_cannot_carry(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"sender": "app", "t": 1767225600000, "n": "n0123456789abcdef", **kwargs}
    with pytest.raises(ValueError, match=f"^{field} must"):
        durable_sdk.sign_v2(b"{}", "k", **args)


def test_v2_mac_is_checked_before_time_and_binding() -> None:
    """A forged message learns nothing but "mac", whatever else is wrong with it."""
    header = durable_sdk.sign_v2(b"{}", "k", "app", 0, n="n0123456789abcdef", r="rrrrrrrrrrrrrrrr")
    with pytest.raises(durable_sdk.SignatureError) as refused:
        durable_sdk.verify_v2(b"{}", ["other"], header, "app", 10**13, reply_to="ssssssssssssssss")
    assert refused.value.reason == "mac"
    with pytest.raises(durable_sdk.SignatureError) as refused:
        durable_sdk.verify_v2(b"{}", "k", header, "app", 10**13, reply_to="ssssssssssssssss")
    assert refused.value.reason == "stale"


# The served endpoint's nonce memory.
def test_nonce_store_refuses_a_nonce_seen_within_ten_minutes() -> None:
    store = NonceStore()
    assert store.accept("a" * 32, 0, 0) is True
    assert store.accept("a" * 32, 0, 10 * 60 * 1000 - 1) is False
    assert store.accept("b" * 32, 1, 1) is True
    assert store.accept("a" * 32, 0, 10 * 60 * 1000) is True  # forgotten: its message is stale by now
    assert len(store) == 2


def test_a_full_nonce_store_drops_the_oldest_and_refuses_what_could_be_its_replay() -> None:
    store = NonceStore(keep_ms=1000, max_size=3)
    assert [store.accept(f"{i:032x}", i, i) for i in range(3)] == [True, True, True]
    assert store.accept("f" * 32, 500, 500) is True  # full of live nonces: the oldest (t=0) is dropped
    assert len(store) == 3
    assert store.accept(f"{0:032x}", 0, 501) is False  # its replay: signed at or before the floor
    assert store.accept("e" * 32, 0, 502) is False  # anything else that old could be a dropped nonce
    assert store.accept(f"{1:032x}", 1, 503) is False  # still held
    assert store.accept("d" * 32, 501, 504) is True  # newer than the floor: accepted (t=1 dropped)
    assert store.accept("c" * 32, 1, 505) is False  # the floor rose with it


def test_a_full_nonce_store_keeps_accepting_a_steady_stream() -> None:
    """Full at any rate: invokes stamped as they are sent are all accepted (the old store answered 503
    once it held max_size live nonces, capping an app process near 166 invokes a second)."""
    store = NonceStore(max_size=1000)
    accepted = [store.accept(f"{i:032x}", i, i + 5) for i in range(20_000)]  # 1 per ms, 5 ms in transit
    assert all(accepted)
    assert len(store) == 1000
    assert store.accept(f"{18_999:032x}", 18_999, 20_010) is False  # a replay of a held one
    assert store.accept(f"{5:032x}", 5, 20_011) is False  # a replay of a dropped one


def test_nonce_store_forgets_an_expired_nonce_even_after_the_clock_went_back() -> None:
    store = NonceStore(keep_ms=1000)
    assert store.accept("late" * 8, 5000, 5000) is True
    assert store.accept("early" * 7, 100, 100) is True  # the clock went back: not in expiry order
    assert store.accept("early" * 7, 100, 1200) is True  # expired, though behind a live entry
    assert store.accept("late" * 8, 5000, 5999) is False


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_apps_accept_the_v2_invoke_vector_while_fresh(
    kind: str, asgi_request: Any, wsgi_request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    vector = V2["sign"][0]  # an invoke of function "f", which the app does not serve
    serve, request = (
        (durable_sdk.serve, asgi_request) if kind == "asgi" else (durable_sdk.serve_wsgi, wsgi_request)
    )
    app = serve([], signing_key=vector["key"])
    body, headers = vector["body"].encode(), {"x-durable-signature-v2": vector["header"]}
    monkeypatch.setattr(_step, "_now_ms", lambda: vector["t"] + 5 * 60 * 1000 + 1)
    answer = request(app, body=body, headers=headers)
    assert answer.status == 401
    assert "(stale)" in answer.json()["error"]
    monkeypatch.setattr(_step, "_now_ms", lambda: vector["t"] + 5 * 60 * 1000)
    answer = request(app, body=body, headers=headers)
    assert answer.status == 404  # authentic: past the signature check, to the unknown function
    signature = durable_sdk.verify_v2(
        answer.body, vector["key"], answer.headers["x-durable-signature-v2"], "app", vector["t"], vector["n"]
    )
    assert signature.r == vector["n"]
