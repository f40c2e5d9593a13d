"""Signatures v2 on the served endpoint (ASGI and WSGI alike): an invoke must be signed by the engine,
fresh and never seen before; every answer is signed by the app and bound to the invoke it answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _serve, _signing, _step
from durable_sdk._nonces import NonceStore

NOW = 1767225600000
FIVE_MINUTES = 5 * 60 * 1000
charges: list[str] = []


@durable_sdk.function(id="charge", trigger={"event": "order.paid"})
def charge(event: Any, step: Any) -> Any:
    return step.run("charge-card", lambda: charges.append(event["data"]["orderId"]) or "charged")


def invoke_body(order: str = "o-1") -> bytes:
    event = {"id": "e1", "name": "order.paid", "data": {"orderId": order}, "ts": NOW}
    return json.dumps(
        {"runId": "r1", "functionId": "charge", "attempt": 1, "event": event, "steps": {}}
    ).encode()


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_step, "_now_ms", lambda: NOW)
    charges.clear()


@pytest.fixture(params=["asgi", "wsgi"])
def post(request: Any, key: str, asgi_request: Any, wsgi_request: Any) -> Any:
    """POST through a fresh app (its own nonce memory, as one process): ``post(body, headers)``."""
    serve, send = (
        (durable_sdk.serve, asgi_request)
        if request.param == "asgi"
        else (durable_sdk.serve_wsgi, wsgi_request)
    )
    app = serve([charge], signing_key=key, signing_key_fallback="the-next-key")
    return lambda body, headers: send(app, body=body, headers=headers)


def test_answer_is_signed_v2_bound_to_the_invoke_and_v1(
    post: Any, key: str, invoke_headers: Any, check_answer: Any
) -> None:
    headers = invoke_headers(invoke_body(), key, n="invoke-nonce-0001")
    answer = post(invoke_body(), headers)
    step = {"id": "charge-card", "data": "charged"}
    expected = {"op": "checkpoint", "steps": [step], "then": {"op": "done", "data": "charged"}}
    assert (answer.status, answer.json()) == (200, expected)
    check_answer(answer, key, headers)
    signature = _signing.parse_v2(answer.headers["x-durable-signature-v2"])
    assert (signature.t, signature.r) == (NOW, "invoke-nonce-0001")
    assert len(signature.n) == 32 and signature.n != "invoke-nonce-0001"


def test_a_replayed_invoke_is_refused_and_its_step_does_not_run_again(
    post: Any, key: str, invoke_headers: Any
) -> None:
    body = invoke_body()
    captured = invoke_headers(body, key)
    assert post(body, captured).status == 200
    for _ in range(3):
        answer = post(body, captured)
        assert answer.status == 401
        assert "replay" in answer.json()["error"]
        assert "x-durable-signature-v2" in answer.json()["error"]
    assert charges == ["o-1"]  # the card was charged once


def test_a_nonce_is_single_use_whatever_the_body(post: Any, key: str, invoke_headers: Any) -> None:
    assert (
        post(invoke_body("o-1"), invoke_headers(invoke_body("o-1"), key, n="same-nonce-000001")).status == 200
    )
    answer = post(invoke_body("o-2"), invoke_headers(invoke_body("o-2"), key, n="same-nonce-000001"))
    assert (answer.status, charges) == (401, ["o-1"])
    assert "replay" in answer.json()["error"]


@pytest.mark.parametrize(
    ("skew", "ok"), [(FIVE_MINUTES, True), (FIVE_MINUTES + 1, False), (-FIVE_MINUTES - 1, False)]
)
def test_a_stale_invoke_is_refused(post: Any, key: str, invoke_headers: Any, skew: int, ok: bool) -> None:
    answer = post(invoke_body(), invoke_headers(invoke_body(), key, t=NOW - skew))
    if ok:
        assert answer.status == 200
    else:
        assert answer.status == 401
        assert answer.json()["error"].startswith("x-durable-signature-v2 refused (stale): ")
        assert charges == []


def test_a_signature_for_the_app_direction_is_refused(post: Any, key: str) -> None:
    """The app's own signature (a request it sent, or an answer it gave) is not an invoke."""
    body = invoke_body()
    for reply in ("", "invoke-nonce-0001"):
        header = durable_sdk.sign_v2(body, key, "app", NOW, r=reply)
        answer = post(
            body, {"x-durable-signature-v2": header, "x-durable-signature": durable_sdk.sign(body, key)}
        )
        assert answer.status == 401
        assert answer.json()["error"].startswith("x-durable-signature-v2 refused (mac): ")
    assert charges == []


def test_an_invoke_carrying_r_is_refused(post: Any, key: str) -> None:
    body = invoke_body()
    header = durable_sdk.sign_v2(body, key, "engine", NOW, r="some-request-0001")
    answer = post(body, {"x-durable-signature-v2": header})
    assert answer.status == 401
    assert answer.json()["error"].startswith("x-durable-signature-v2 refused (reply): ")


def test_a_bad_v2_signature_is_not_rescued_by_a_good_v1_one(post: Any, key: str, invoke_headers: Any) -> None:
    body = invoke_body()
    headers = invoke_headers(body, "some-other-key") | {"x-durable-signature": durable_sdk.sign(body, key)}
    answer = post(body, headers)
    assert answer.status == 401
    assert "x-durable-signature-v2" not in answer.headers  # a refused invoke is answered by no nonce
    assert durable_sdk.verify(answer.body, key, answer.headers["x-durable-signature"])
    assert charges == []


def test_v2_is_the_one_checked_when_present(post: Any, key: str, invoke_headers: Any) -> None:
    body = invoke_body()
    assert post(body, invoke_headers(body, key) | {"x-durable-signature": "0" * 64}).status == 200


@pytest.mark.parametrize("v1", [True, False], ids=["v1-only", "unsigned"])
def test_an_invoke_without_v2_is_refused(post: Any, key: str, v1: bool) -> None:
    body = invoke_body()
    answer = post(body, {"x-durable-signature": durable_sdk.sign(body, key)} if v1 else {})
    assert answer.status == 401
    error = answer.json()["error"]
    assert error.startswith("missing x-durable-signature-v2: this app requires signatures v2")
    assert error.endswith("only x-durable-signature (v1)" if v1 else "no signature")
    assert charges == []


def test_the_fallback_key_is_accepted_and_answers_use_the_primary(
    post: Any, key: str, invoke_headers: Any, check_answer: Any
) -> None:
    headers = invoke_headers(invoke_body(), "the-next-key")
    answer = post(invoke_body(), headers)
    assert answer.status == 200
    check_answer(answer, key, headers)
    assert post(invoke_body(), invoke_headers(invoke_body(), "a-third-key")).status == 401


def test_errors_after_authentication_are_bound_too(key: str, invoke_headers: Any) -> None:
    endpoint = _serve._Endpoint([charge], key)
    for body, status in ((b"{oops", 400), (invoke_body().replace(b'"charge"', b'"nope"'), 404)):
        v2 = invoke_headers(body, key, n="invoke-nonce-0001")["x-durable-signature-v2"]
        code, headers, payload = endpoint.answer("POST", body, None, v2)
        assert code == status
        signature = durable_sdk.verify_v2(
            payload, key, dict(headers)["x-durable-signature-v2"], "app", NOW, "invoke-nonce-0001"
        )
        assert signature.r == "invoke-nonce-0001"
        endpoint.nonces = NonceStore()


def test_a_full_nonce_memory_runs_new_invokes_and_refuses_old_ones(key: str, invoke_headers: Any) -> None:
    endpoint = _serve._Endpoint([charge], key, clock=lambda: NOW, nonces=NonceStore(max_size=1))
    first, second = invoke_body("o-1"), invoke_body("o-2")
    old = invoke_headers(first, key, t=NOW)["x-durable-signature-v2"]
    assert endpoint.answer("POST", first, None, old)[0] == 200
    endpoint.clock = lambda: NOW + 1  # a later invoke, stamped later: the first nonce is dropped for it
    newer = durable_sdk.sign_v2(second, key, "engine", NOW + 1)
    assert endpoint.answer("POST", second, None, newer)[0] == 200
    # The first invoke again: its nonce was dropped, but its t is at the floor, so it is refused.
    status, _, payload = endpoint.answer("POST", first, None, old)
    assert status == 401 and b"replay" in payload
    assert charges == ["o-1", "o-2"]


def test_fallback_key_must_be_a_non_empty_string(key: str) -> None:
    with pytest.raises(ValueError, match="signing_key_fallback"):
        durable_sdk.serve([charge], signing_key=key, signing_key_fallback="")
