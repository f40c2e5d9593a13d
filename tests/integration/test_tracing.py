"""OpenTelemetry (docs/tracing.md): spans of real runs, driven over real HTTP, received by a real
OTLP/HTTP endpoint in the test (aiohttp, decoded with opentelemetry-proto), and the `traceparent` the
app received with every invoke."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import durable_sdk
import orjson
import pytest
from aiohttp import web
from durable_sdk._serve import parse_traceparent
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from durable.engine.tracing import (
    Tracing,
    _step_ids,
    configured_endpoint,
    setup_tracing,
    trace_id_of,
    traceparent,
)
from durable.errors import ConfigError
from tests.e2e.procs import Proc, engine_env
from tests.harness import AppServer, Engine, free_port, read_request


@dataclass
class Span:
    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    kind: int
    start_ns: int
    attributes: dict[str, Any]
    error: str | None  # the status message when the status is ERROR
    service: str


@dataclass
class Receiver:
    """POST /v1/traces: OTLP/HTTP with protobuf, as a collector receives it."""

    url: str
    spans: list[Span] = field(default_factory=list)
    requests: int = 0
    content_types: set[str] = field(default_factory=set)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind)


def _decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    Span(
                        name=s.name,
                        trace_id=int.from_bytes(s.trace_id, "big"),
                        span_id=int.from_bytes(s.span_id, "big"),
                        parent_id=int.from_bytes(s.parent_span_id, "big") if s.parent_span_id else None,
                        kind=s.kind,
                        start_ns=s.start_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        error=s.status.message if s.status.code == 2 else None,
                        service=str(resource.get("service.name")),
                    )
                )
    return spans


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    found = Receiver(f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        found.requests += 1
        found.content_types.add(request.content_type)
        found.spans.extend(_decode(await request.read()))
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield found
    await runner.cleanup()


class TraceHeaders:
    """ASGI middleware in front of the SDK app: the traceparent header of every invoke, by run."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str | None]] = []  # (run id, traceparent)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            body, receive = await read_request(receive)
            header = dict(scope["headers"]).get(b"traceparent")
            with self.lock:
                self.seen.append((orjson.loads(body)["runId"], header.decode() if header else None))
        await self.app(scope, receive, send)


def _traced(engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Tracing:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "durable-test")
    tracing = setup_tracing("0.0.0-test")
    assert tracing is not None
    for invoker in engine.invokers:  # the harness builds its invokers without tracing
        invoker.tracing = tracing
    return tracing


async def test_a_run_is_one_trace_of_drive_and_invoke_spans_and_the_app_gets_its_traceparent(
    engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: dict[str, int] = {}
    lock = threading.Lock()

    def flaky(key: str) -> str:
        with lock:
            tries[key] = tries.get(key, 0) + 1
            if tries[key] == 1:
                raise RuntimeError("first try fails")
        return "ok"

    @durable_sdk.function(id="ship", trigger={"event": "order.paid"}, checkpoint=False)  # a span per step
    async def ship(event, step):  # type: ignore[no-untyped-def]
        await step.run("load", lambda: time.sleep(0.05) or {"order": event["data"]["order"]})
        await step.run("flaky", lambda: flaky(event["data"]["order"]))
        await step.sleep("nap", "1s")
        return "shipped"

    ws = await engine.workspace()
    app_server = AppServer([ship], ws.signing_key, record=True)
    assert app_server.recorder is not None
    headers = TraceHeaders(app_server.recorder.app)
    app_server.recorder.app = headers
    with app_server:
        await engine.sync(ws, app_server.url, [ship])
        await engine.start_workers()
        tracing = _traced(engine, receiver, monkeypatch)
        await engine.send(ws, "order.paid", {"order": "o1"})
        await engine.send(ws, "order.paid", {"order": "o2"})
        runs = await engine.wait_runs(ws, 2, timeout=30)
        await asyncio.to_thread(tracing.provider.force_flush)
    assert receiver.requests >= 1 and receiver.content_types == {"application/x-protobuf"}

    rounds = [
        # (op, step id, attempt at the invoke, what the round did to the run)
        ("step", "load", 1, "continue"),
        ("error", "flaky", 1, "parked"),  # a retry: the run parks until its backoff ends
        ("step", "flaky", 2, "continue"),
        ("sleep", "nap", 1, "parked"),
        ("done", None, 1, "ended"),
    ]
    for run in runs:
        run_id = run["id"]
        trace_id = trace_id_of(run_id)
        mine = sorted(
            (s for s in receiver.spans if s.attributes.get("durable.run.id") == run_id),
            key=lambda s: s.start_ns,
        )
        assert {s.trace_id for s in mine} == {trace_id}, "every span of a run is in the run's trace"
        assert all(s.service == "durable-test" for s in mine)
        drives = [s for s in mine if s.name == "durable.run"]
        invokes = [s for s in mine if s.name == "durable.invoke"]
        assert len(drives) + len(invokes) == len(mine)
        # A retry and a sleep each end a drive: three drives, each a root span of the trace.
        assert [
            (d.parent_id, d.attributes["durable.outcome"], d.attributes["durable.invokes"]) for d in drives
        ] == [
            (None, "parked", 2),
            (None, "parked", 2),
            (None, "ended", 1),
        ]
        got = [
            (
                s.attributes["durable.op"],
                s.attributes.get("durable.step.id"),
                s.attributes["durable.attempt"],
                s.attributes["durable.outcome"],
            )
            for s in invokes
        ]
        assert got == rounds
        drive_ids = [d.span_id for d in drives]
        assert [drive_ids.index(s.parent_id) for s in invokes] == [0, 0, 1, 1, 2]  # type: ignore[arg-type]
        for s in invokes:
            assert s.kind == 3  # SPAN_KIND_CLIENT
            assert {
                k: s.attributes[k] for k in ("durable.run.id", "durable.function.id", "durable.app.id")
            } == {
                "durable.run.id": run_id,
                "durable.function.id": "ship",
                "durable.app.id": ws.id,
            }
            assert (
                isinstance(s.attributes["durable.queued_ms"], int) and s.attributes["durable.queued_ms"] >= 0
            )
        assert invokes[1].error == "first try fails" and all(
            s.error is None for s in invokes if s is not invokes[1]
        )
        # queued and app time are the figures the engine stored for the step
        detail = await engine.run(run_id)
        load = next(s for s in detail["steps"] if s["id"] == "load")
        assert (invokes[0].attributes["durable.queued_ms"], invokes[0].attributes["durable.app_ms"]) == (
            load["queuedMs"],
            load["appMs"],
        )
        assert invokes[0].attributes["durable.app_ms"] >= 50  # the step slept 50 ms in the app
        # The app received, with each invoke, the traceparent of that invoke's span.
        sent = [tp for r, tp in headers.seen if r == run_id]
        assert sent == [traceparent(trace_id, s.span_id, True) for s in invokes]


async def test_a_durable_worker_process_exports_the_runs_it_drives(
    engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    """The runtime's set-up, in a real `durable worker`: its spans reach the receiver, in the trace this
    process computes for the run, and its invokes carry their traceparent."""

    @durable_sdk.function(id="hello", trigger={"event": "hello"}, checkpoint=False)
    async def hello(event, step):  # type: ignore[no-untyped-def]
        return await step.run("greet", lambda: "hi")

    ws = await engine.workspace()
    app_server = AppServer([hello], ws.signing_key, record=True)
    assert app_server.recorder is not None
    headers = TraceHeaders(app_server.recorder.app)
    app_server.recorder.app = headers
    env = engine_env(engine.dsn, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="durable-worker")
    with app_server:
        await engine.sync(ws, app_server.url, [hello])
        worker = Proc("worker", env, tmp_path, "worker")
        try:
            await asyncio.to_thread(worker.wait_log, "worker loop(s) running")
            assert "tracing: exporting spans over OTLP/HTTP to " + receiver.url in worker.log()
            await engine.send(ws, "hello")  # no worker in this process: the subprocess claims it
            [run] = await engine.wait_runs(ws, 1, timeout=30)
            worker.term()  # drains, then exports what is queued
            assert await asyncio.to_thread(worker.wait, 30) == 0, worker.log()
        finally:
            worker.stop()
    spans = [s for s in receiver.spans if s.attributes.get("durable.run.id") == run["id"]]
    assert sorted((s.name, s.service, s.trace_id) for s in spans) == [
        ("durable.invoke", "durable-worker", trace_id_of(run["id"])),
        ("durable.invoke", "durable-worker", trace_id_of(run["id"])),
        ("durable.run", "durable-worker", trace_id_of(run["id"])),
    ]
    invokes = sorted((s for s in spans if s.name == "durable.invoke"), key=lambda s: s.start_ns)
    assert [s.attributes["durable.op"] for s in invokes] == ["step", "done"]
    assert [tp for r, tp in headers.seen if r == run["id"]] == [
        traceparent(s.trace_id, s.span_id, True) for s in invokes
    ]


async def test_an_invoke_that_fails_in_transport_is_an_error_span(
    engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/nothing-here", [{"id": "lost", "trigger": {"event": "go"}}])
    await engine.start_workers()
    tracing = _traced(engine, receiver, monkeypatch)
    await engine.send(ws, "go")

    async def exported() -> list[Span]:
        await asyncio.to_thread(tracing.provider.force_flush)
        return [s for s in receiver.spans if s.name == "durable.invoke"]

    invoke = (await engine.wait_for(exported, what="an invoke span"))[0]
    assert invoke.attributes["durable.op"] == "invoke_error"
    assert invoke.attributes["durable.outcome"] == "parked"  # unreachable: backs off, no attempt used
    assert invoke.error is not None and invoke.error.startswith("app unreachable: connection refused")


def test_the_trace_id_is_derived_from_the_run_id_alone() -> None:
    assert trace_id_of("01jz0000000000000000000000") == trace_id_of("01jz0000000000000000000000")
    assert trace_id_of("01jz0000000000000000000000") != trace_id_of("01jz0000000000000000000001")
    assert 0 < trace_id_of("x") < 1 << 128
    assert traceparent(1, 2, True) == "00-00000000000000000000000000000001-0000000000000002-01"
    assert traceparent(1, 2, False).endswith("-00")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf",
        ),
    ],
)
def test_a_bad_otlp_setting_is_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured_endpoint(env)
    assert caught.value.message.startswith(message), caught.value.message


def test_tracing_is_off_without_an_endpoint_or_when_disabled() -> None:
    assert configured_endpoint({}) is None
    assert configured_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}) is None
    assert (
        configured_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"})
        is None
    )
    assert (
        configured_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}) == "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_without_an_endpoint_no_tracing_code_is_imported() -> None:
    """FastAPI itself depends on opentelemetry-api (its no-op API, for its own spans), so that package
    is imported either way; the SDK and the exporter, which the `otel` extra brings, are not."""
    code = (
        "import sys\n"
        "import durable.runtime, durable.worker.loop\n"
        "from durable.engine.tracing import setup_tracing\n"
        "assert setup_tracing() is None\n"
        "prefixes = ('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.proto')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
        "print('opentelemetry.trace' in sys.modules)\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"]  # the check sees the modules it looks for


def test_an_endpoint_without_the_extra_installed_warns_and_traces_nothing() -> None:
    code = (
        "import logging, sys\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        "from durable.engine.tracing import setup_tracing\n"
        "print(setup_tracing())\n"
    )
    done = _python(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
    assert (
        "WARNING OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: no spans are exported "
        "(install the extra: pip install 'durable-engine[otel]')"
    ) in done.stderr


def test_a_bad_endpoint_stops_start_up_with_one_line() -> None:
    done = _python(
        "from durable.engine.tracing import setup_tracing\nsetup_tracing()\n",
        OTEL_EXPORTER_OTLP_ENDPOINT="4318",
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "durable: OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL of an OTLP/HTTP receiver "
        "(e.g. http://localhost:4318), got '4318'"
    )


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        (" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00 ", True),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future", True),
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", False),  # upper case
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),  # zero trace id
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),  # zero parent id
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),  # invalid version
        ("garbage", False),
        (None, False),
    ],
)
def test_the_python_sdk_keeps_a_well_formed_traceparent_only(header: str | None, kept: bool) -> None:
    assert parse_traceparent(header) == (header.strip() if kept and header else None)


@pytest.mark.skipif(shutil.which("php") is None, reason="no php here: the PHP SDK is checked where php runs")
def test_the_php_sdk_keeps_a_well_formed_traceparent_only() -> None:
    code = (
        "require 'sdks/php/src/Serve.php';"
        "echo json_encode(["
        "Durable\\Serve::traceparent(['TraceParent' => '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']),"
        "Durable\\Serve::traceparent(['traceparent' => ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00']]),"
        "Durable\\Serve::traceparent(['traceparent' => '00-00000000000000000000000000000000-b7ad6b7169203331-01']),"
        "Durable\\Serve::traceparent(['traceparent' => 'garbage']),"
        "Durable\\Serve::traceparent(['x-durable-signature-v2' => 't=1,n=x,s=y']),"
        "]);"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(["php", "-r", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        None,
        None,
        None,
    ]


def test_an_invoke_span_names_every_step_of_a_checkpoint_and_of_what_stopped_it() -> None:
    stopped = {"op": "parallel", "ops": [{"op": "step", "id": "c", "data": 1}, {"op": "send", "id": "d"}]}
    checkpoint = {"op": "checkpoint", "steps": [{"id": "a", "data": 1}, {"id": "b", "data": 2}]}
    assert _step_ids({**checkpoint, "then": stopped}) == ["a", "b", "c", "d"]
    assert _step_ids({**checkpoint, "then": {"op": "done", "data": None}}) == ["a", "b"]
    assert _step_ids({**checkpoint, "then": None}) == ["a", "b"]
