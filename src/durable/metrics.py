"""Prometheus metrics, one registry for the process. Every metric is documented where it is defined."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()

INVOKES = Counter(
    "durable_invokes", "Invokes sent to apps, by outcome (ok or error).", ["outcome"], registry=REGISTRY
)
INVOKE_SECONDS = Histogram(
    "durable_invoke_seconds",
    "Wall time of one invoke round trip to the app.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RUNS_ENDED = Counter("durable_runs_ended", "Runs that ended here, by status.", ["status"], registry=REGISTRY)
EVENTS_INGESTED = Counter("durable_events_ingested", "Events accepted by POST /e.", registry=REGISTRY)


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
