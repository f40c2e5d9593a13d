"""Every vector of spec/conformance/signature-vectors.json, through sign/verify and through both apps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import durable_sdk

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
def test_apps_accept_exactly_the_vector_signature(
    vector: dict[str, str], kind: str, asgi_request: Any, wsgi_request: Any
) -> None:
    serve, request = (
        (durable_sdk.serve, asgi_request) if kind == "asgi" else (durable_sdk.serve_wsgi, wsgi_request)
    )
    app = serve([], signing_key=vector["key"])
    body = vector["body"].encode()
    # authentic: past the signature check (the vector bodies are not invokes, hence 400)
    assert request(app, body=body, headers={"x-durable-signature": vector["signature"]}).status == 400
    for headers in ({}, {"x-durable-signature": vector["signature"][::-1]}):
        answer = request(app, body=body, headers=headers)
        assert answer.status == 401
        assert "x-durable-signature" in answer.json()["error"]
        assert durable_sdk.verify(answer.body, vector["key"], answer.headers["x-durable-signature"])
