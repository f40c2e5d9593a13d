"""Response shapes for the OpenAPI document. Routes answer with orjson directly (no validation on the
way out); these models only describe what they send, for `/openapi.json` and its readers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong, naming the field")
    code: str = Field(
        description="bad_request | unauthorized | not_found | conflict | payload_too_large | unavailable"
    )


class Ids(BaseModel):
    ids: list[str]


class Workspace(BaseModel):
    id: str
    name: str
    environment: Literal["dev", "acc", "prod"]
    url: str | None = None
    functionCount: int = 0
    createdAt: str | None = None
    syncedAt: str | None = None
    signatureMode: Literal["compat", "v2"] = Field(
        "v2", description="compat: v1 or v2 signatures accepted; v2: v2 only (docs/protocol.md)"
    )
    rotating: bool = Field(False, description="A previous signing key is still accepted (never shown)")
    maxConcurrency: int | None = Field(
        None, description="The operator's cap on this workspace's runs executing at once; null: no cap"
    )
    executing: int = Field(0, description="Runs executing now (holding a worker's lease)")
    queued: int = Field(
        0, description="Runs due now, waiting for a slot; counted up to 10,001 (show 10,000+ above that)"
    )
    scheduled: int = Field(
        0,
        description="Runs due later (a sleep, a wait's deadline, a retry's backoff, a throttle or debounce"
        " start); counted up to 10,001",
    )


class RotatedKey(BaseModel):
    id: str
    signingKey: str = Field(
        description="The new key, shown here only. The previous key stays accepted, and the engine signs "
        "with it, until DELETE /api/apps/{appId}/keys/previous"
    )
    signatureMode: Literal["compat", "v2"]


class PreviousKeyRemoved(BaseModel):
    id: str
    removed: bool = Field(description="False when the workspace had no previous key")


class WorkspaceSettings(BaseModel):
    id: str
    signatureMode: Literal["compat", "v2"]
    maxConcurrency: int | None = Field(
        None, description="The cap on the workspace's runs executing at once; null: no cap"
    )


SignatureMode = WorkspaceSettings  # the name this answer had when it held the signature mode only


class CreatedWorkspace(BaseModel):
    id: str
    name: str
    environment: Literal["dev", "acc", "prod"]
    signingKey: str = Field(description="Shown here only: sign every SDK request with it")


class WorkspaceList(BaseModel):
    items: list[Workspace]
    nextCursor: str | None


class Concurrency(BaseModel):
    limit: int
    key: str | None = None


class Limit(BaseModel):
    """`throttle` and `rateLimit`: `limit` per `period` milliseconds."""

    limit: int
    period: int = Field(description="milliseconds")
    key: str | None = None


class Debounce(BaseModel):
    period: int = Field(description="milliseconds")
    key: str | None = None
    timeout: int | None = Field(None, description="milliseconds")


class Batch(BaseModel):
    maxSize: int
    timeout: int = Field(description="milliseconds")
    key: str | None = None


class PriorityKey(BaseModel):
    key: str


class Paused(BaseModel, extra="forbid"):
    mode: Literal["queue", "skip"] = Field(
        description="queue: new and not-yet-started runs are held until resume; skip: new events start nothing"
    )
    since: str = Field(description="when the function was paused")


class Function(BaseModel, extra="allow"):
    """A synced function; an option appears only when it is set (the composition options, such as
    idempotency, singleton, cancelOn and onFailure, as they were synced)."""

    id: str
    name: str
    trigger: dict[str, str | None] = Field(
        description='{"event": name} or {"cron": expression}; {"cron": null}: no trigger (the function'
        " starts through invoke, as a failure handler, or from the dashboard)"
    )
    retries: int | None = None
    concurrency: Concurrency | None = None
    priority: int | PriorityKey | None = None
    throttle: Limit | None = None
    rateLimit: Limit | None = None
    debounce: Debounce | None = None
    batch: Batch | None = None
    paused: Paused | None = Field(None, description="null unless an operator paused the function")


class FunctionList(BaseModel):
    items: list[Function]
    nextCursor: str | None


class RunError(BaseModel):
    message: str


class StepError(BaseModel, extra="forbid"):
    message: str
    reason: Literal["failed", "timeout", "cancelled", "not_found"] | None = Field(
        None, description="an invoke step whose child did not complete: why"
    )
    runId: str | None = Field(None, description="an invoke step: the child run, if one started")
    functionId: str | None = Field(None, description="an invoke step: the function it invoked")


class AttemptError(BaseModel, extra="forbid"):
    attempt: int = Field(description="the step's attempt (1-based) that failed")
    message: str
    at: str = Field(description="when the attempt failed")


class Retry(BaseModel, extra="forbid"):
    reason: str = Field(description='why the last try failed, e.g. "app unreachable: connection refused"')
    attempt: int = Field(description="the attempt the next try makes (an unreachable app uses none up)")
    maxAttempts: int
    unreachable: bool = Field(description="the app ran nothing (refused, DNS, connect timeout, 502/503/504)")
    since: str = Field(description="when this wait began; for an unreachable app, when the outage began")
    nextAt: str = Field(description="when the next try is due")


class Step(BaseModel):
    id: str
    type: Literal["run", "sleep", "wait", "invoke", "send"]
    status: Literal["completed", "failed", "retrying", "sleeping", "waiting"]
    attempts: int
    output: Any = None
    error: StepError | None
    errors: list[AttemptError] = Field(description="each failed attempt of this step, oldest first")
    queuedMs: int = Field(description="durable time: queue, backoff, sleep or wait")
    appMs: int = Field(description="time inside the app's answer")
    startedAt: str | None
    endedAt: str | None


class CancelledBy(BaseModel, extra="forbid"):
    kind: Literal["user", "event", "singleton", "parent", "bulk"]
    eventId: str | None = Field(None, description="kind event: the event that cancelled the run")
    eventName: str | None = None
    runId: str | None = Field(None, description="kind singleton or parent: the run that caused it")


class Child(BaseModel, extra="forbid"):
    runId: str
    functionId: str
    stepId: str | None = Field(description="the parent's invoke step that started it")
    status: Literal["active", "completed", "failed", "cancelled"]


class RunSummary(BaseModel):
    id: str
    appId: str
    functionId: str
    eventId: str
    status: Literal["active", "completed", "failed", "cancelled"]
    activity: Literal["executing", "queued", "waiting", "sleeping", "scheduled"] | None
    output: Any = Field(
        None,
        description="the handler's result once completed. In the runs list, only when its JSON text has at"
        " most 2048 characters; a longer one is null there and comes as outputPreview",
    )
    outputPreview: str | None = Field(
        None,
        description="runs list only: the first 2048 characters of the output's JSON text when it is"
        " longer (GET /api/runs/{runId} has it whole); null otherwise",
    )
    outputTruncated: bool = Field(False, description="true when output is given as outputPreview")
    error: RunError | None = Field(description="what the run failed with; null unless it failed")
    flow: dict[str, dict[str, Any]] | None = Field(
        description="why an active run is scheduled or queued: {option: {until?, ...}}"
    )
    parentRunId: str | None = Field(None, description="the run that invoked this one (step.invoke)")
    cancelledBy: CancelledBy | None = Field(None, description="who cancelled the run; null unless cancelled")
    createdAt: str | None
    startedAt: str | None
    endedAt: str | None


class Run(RunSummary):
    event: dict[str, Any]
    rerunOf: str | None
    retry: Retry | None = Field(description="the retry the run waits out while it is scheduled by one")
    errors: list[AttemptError] = Field(
        description="failed attempts whose step is unknown (the app answered nothing, or an error op "
        "without a step id), oldest first, the last 50"
    )
    steps: list[Step] = Field(description="in execution order")
    children: list[Child] = Field(description="the runs this run invoked, oldest first")


class RunList(BaseModel):
    items: list[RunSummary]
    nextCursor: str | None


class RerunAnswer(BaseModel):
    runId: str


class PauseAnswer(BaseModel, extra="forbid"):
    id: str = Field(description="the function")
    paused: Paused | None
    runs: int = Field(description="pause: the runs this call held; resume: the held runs made due")


class BulkAnswer(BaseModel, extra="forbid"):
    count: int = Field(description="the runs selected (at most 10,000): cancelled, rerun, or counted")


RunStatus = Literal["active", "completed", "failed", "cancelled"]


class EventRun(BaseModel, extra="forbid"):
    runId: str
    functionId: str
    status: RunStatus


class EventOutcome(BaseModel, extra="forbid"):
    """What an event did besides starting a run of a function."""

    outcome: Literal["skipped", "debounced", "batched", "resumed", "cancelled"] = Field(
        description="skipped: started no run (see reason); debounced, batched: joined the run runId;"
        " resumed: resolved a wait of the run runId; cancelled: cancelled the run runId (cancelOn)"
    )
    functionId: str | None = Field(
        None, description="the function concerned (for a resumed run, that run's function)"
    )
    reason: str | None = Field(
        None, description="skipped: rateLimit | idempotency | singleton | paused | ..."
    )
    runId: str | None = Field(None, description="the run joined, resumed or cancelled")


class Event(BaseModel):
    id: str
    name: str
    data: dict[str, Any]
    ts: int
    receivedAt: str | None
    runs: list[EventRun] = Field(description="the runs this event started")
    outcomes: list[EventOutcome] = Field(description="what else it did, in the order it happened")


class EventList(BaseModel):
    items: list[Event]
    nextCursor: str | None


class MetricsBucket(BaseModel):
    t: str
    started: int
    completed: int
    failed: int
    queuedMs: int
    appMs: int
    backlog: int


class FunctionMetrics(BaseModel):
    functionId: str
    completed: int
    failed: int
    p95Ms: int | None = Field(
        description="95th percentile of the durations of the runs that ended in the range (created to"
        " ended), from a histogram with 64 buckets per doubling (each 1.1 % wide), interpolated in its"
        " bucket and clamped to the exact shortest and longest duration: within 1.1 % of the exact"
        " value, and exact for a single run; null when no run ended"
    )
    maxMs: int | None = Field(description="the longest of those durations, exactly")


class Metrics(BaseModel):
    range: Literal["1h", "24h", "7d"]
    bucketSeconds: int
    buckets: list[MetricsBucket]
    functions: list[FunctionMetrics]


class Session(BaseModel):
    authRequired: bool
    signedIn: bool


class Ok(BaseModel):
    ok: bool


class SyncAnswer(BaseModel):
    ok: bool
    functions: int


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Bad input: the message names the field"),
        (401, "Missing or wrong credentials"),
        (404, "Not found"),
        (409, "Conflicts with the resource's state: the message says what to do first"),
        (413, "Body over 4 MiB"),
        (503, "The database is unreachable (a restart, a failover): retry after Retry-After seconds"),
    )
}


def answers(model: type[BaseModel], *extra: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its 200 body and the error bodies it can send."""
    answer: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for code in (400, 401, 404, 503, *extra):
        answer[code] = ERRORS[code]
    return answer
