"""OpenTelemetry spans of runs and invokes, exported over OTLP/HTTP (docs/tracing.md).

Optional: `pip install 'durable-engine[otel]'` and set `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Without the endpoint, `setup_tracing` returns None at once and
nothing of OpenTelemetry is imported; the worker then pays one `is None` test per invoke.

The shape of a run's trace:

- its trace id is derived from the run id (`trace_id_of`), so every drive of the run, in any process,
  on any day, lands in the same trace, and the app's own spans join it through `traceparent`;
- `durable.run` (one per drive: from a claim or a hand-off until the run parks, ends or loses its
  lease) is a root span of that trace: a run may last days, and a span must end to be exported;
- `durable.invoke` (one per round: the app call and the storing of its answer) is a child of the
  drive's span; its id is the parent id of the `traceparent` sent with that invoke.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from durable.errors import ConfigError

if TYPE_CHECKING:  # only for types: nothing of OpenTelemetry is imported unless tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("durable.tracing")

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
EXTRA_MISSING = (
    "%s is set but OpenTelemetry is not installed: no spans are exported "
    "(install the extra: pip install 'durable-engine[otel]')"
)


def trace_id_of(run_id: str) -> int:
    """The run's trace id: the first 128 bits of sha256(run id), the same in every process."""
    value = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big")
    return value or 1  # an all-zero trace id is invalid (W3C); sha256 giving it is only theoretical


def traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """The W3C `traceparent` header value (version 00)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def configured_endpoint(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The OTLP endpoint variable that is set (its name), or None when tracing is off.

    Raises ConfigError, in the one-line form of a bad variable, for an endpoint that is not an http(s)
    URL or a protocol other than OTLP/HTTP with protobuf (the only exporter the extra installs)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    name = next((n for n in ENDPOINT_VARS if env.get(n, "").strip()), None)
    if name is None:
        return None
    url = urlsplit(env[name].strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(
            f"{name} must be an http:// or https:// URL of an OTLP/HTTP receiver "
            f"(e.g. http://localhost:4318), got {env[name]!r}"
        )
    for protocol_var in PROTOCOL_VARS:
        protocol = env.get(protocol_var, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(
                f"{protocol_var} must be http/protobuf (durable exports OTLP over HTTP only; point "
                f"{name} at the receiver's HTTP port, usually 4318), got {protocol!r}"
            )
    return name


def setup_tracing(version: str = "") -> Tracing | None:
    """Tracing as the environment asks for it: None when no OTLP endpoint is set (nothing imported),
    or when the `otel` extra is not installed (a warning says so). A bad OTEL_* value stops start-up
    with one line naming it (SystemExit)."""
    try:
        name = configured_endpoint()
    except ConfigError as exc:
        raise SystemExit(f"durable: {exc.message}") from None
    if name is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(EXTRA_MISSING, name)
        return None
    ids = _run_trace_ids()
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "durable", "service.version": version}
    )
    # shutdown_on_exit: spans still queued are flushed by atexit, should close() not be reached.
    provider = TracerProvider(resource=resource, id_generator=ids)
    # The exporter reads the endpoint, headers, timeout and compression from the OTEL_* variables; the
    # batch processor exports from its own thread, off the event loop.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log.info("tracing: exporting spans over OTLP/HTTP to %s", os.environ[name])
    return Tracing(provider, ids)


def _run_trace_ids() -> Any:
    """An IdGenerator whose next root span takes the trace id it was given (the run's)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunTraceIds(RandomIdGenerator):
        def __init__(self) -> None:
            self.next_trace_id: int | None = None

        def generate_trace_id(self) -> int:
            given, self.next_trace_id = self.next_trace_id, None
            return given if given is not None else super().generate_trace_id()

    return RunTraceIds()


class Tracing:
    """The engine's tracer; `run(claim)` starts the span of one drive of a run."""

    def __init__(self, provider: TracerProvider, ids: Any) -> None:
        from opentelemetry import context, trace

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("durable")
        self._ids = ids
        self._trace = trace
        self._root = context.Context()  # no parent: a drive's span is a root of the run's trace

    def run(self, run_id: str, function_id: str, app_id: str) -> RunSpan:
        # start_span is synchronous, so no other drive can take this trace id in between.
        self._ids.next_trace_id = trace_id_of(run_id)
        attributes = {"durable.run.id": run_id, "durable.function.id": function_id, "durable.app.id": app_id}
        span = self.tracer.start_span(
            "durable.run", context=self._root, kind=self._trace.SpanKind.INTERNAL, attributes=attributes
        )
        return RunSpan(self, span, attributes)

    def close(self) -> None:
        """Export what is queued (bounded by the exporter's timeout) and stop. Blocking."""
        self.provider.shutdown()


class RunSpan:
    """The span of one drive of a run, and the spans of its invokes."""

    def __init__(self, tracing: Tracing, span: Span, attributes: dict[str, str]) -> None:
        self.tracing = tracing
        self.span = span
        self.attributes = attributes  # the run's ids, repeated on each invoke's span
        self.invokes = 0

    def invoke(self, attempt: int) -> InvokeSpan:
        self.invokes += 1
        span = self.tracing.tracer.start_span(
            "durable.invoke",
            context=self.tracing._trace.set_span_in_context(self.span),
            kind=self.tracing._trace.SpanKind.CLIENT,
            attributes={**self.attributes, "durable.attempt": attempt},
        )
        return InvokeSpan(span, self.tracing._trace.StatusCode.ERROR)

    def end(self, outcome: str, error: BaseException | None = None) -> None:
        """`outcome`: continue (the drive stopped between steps, e.g. on shutdown), parked, ended,
        lost, or failed (the engine failed while driving)."""
        self.span.set_attributes({"durable.outcome": outcome, "durable.invokes": self.invokes})
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(self.tracing._trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
        self.span.end()


class InvokeSpan:
    """The span of one invoke round: the app call and the storing of its answer."""

    def __init__(self, span: Span, error_status: Any) -> None:
        self.span = span
        self._error = error_status
        context = span.get_span_context()
        self.traceparent = traceparent(context.trace_id, context.span_id, context.trace_flags.sampled)

    def end(
        self,
        *,
        queued_ms: int,
        app_ms: int,
        op: Mapping[str, Any] | None,
        outcome: str,
        error: str | None = None,
    ) -> None:
        """`op`: the app's answer (None when the invoke failed: `error` says why); `outcome`: what the
        round did to the run (the `Outcome` value: continue, parked, ended or lost)."""
        attributes: dict[str, Any] = {
            "durable.queued_ms": queued_ms,
            "durable.app_ms": app_ms,
            "durable.outcome": outcome,
        }
        if op is not None:
            attributes["durable.op"] = op["op"]
            ids = _step_ids(op)
            if len(ids) == 1:
                attributes["durable.step.id"] = ids[0]
            elif ids:  # a parallel answer
                attributes["durable.step.ids"] = ids
            if op["op"] == "error":
                self.span.set_status(self._error, str(op.get("message", "")))
        if error is not None:
            attributes["durable.op"] = "invoke_error"
            self.span.set_status(self._error, error)
        self.span.set_attributes(attributes)
        self.span.end()


def _step_ids(op: Mapping[str, Any]) -> list[str]:
    """The step ids an answer names: one, or each of a parallel or checkpoint answer's (a done op names
    none)."""
    if op["op"] == "checkpoint":  # its steps, then those of the op that stopped it
        then = op.get("then")
        return [s["id"] for s in op.get("steps") or []] + ([] if then is None else _step_ids(then))
    ops = op.get("ops") if op["op"] == "parallel" else [op]
    return [o["id"] for o in ops or [] if isinstance(o.get("id"), str)]
