"""The benchmark's app process: the durable_sdk ASGI app under uvicorn (uvloop + httptools).

    BENCH_SIGNING_KEY=... python bench/benchapp.py PORT [PROCESSES]

`three_steps` runs three steps that do nothing (checkpointing on, the SDK's default: one invoke runs all
three), `three_steps_off` the same with `checkpoint=False` (one step per invoke), `twenty_steps` twenty
steps with checkpointing on; `parked` waits for an event that is never sent, `await_approval` for an
approval event matching its order's `orderId` (the ingest scenario);
`burst_gated` (concurrency 10 per tenant) and `burst_plain` (no concurrency option) run one step of
5 ms simulated work, counting at the app how many of each tenant's runs are inside that step at once,
answered as JSON on `GET /stats`; `flood` (priority 100) runs one step that sleeps `workMs` (the
fairness scenario's flooding workspace); `fan-parent` invokes `size` runs of `fan-child` at once and
sums their outputs, `parallel-10` / `sequential-10` run ten 20 ms steps side by side or one after the
other (the compose scenario). `GET /stats` also counts each function's invokes (handler calls), under
"invokes". The bench starts one such process per workspace of a scenario, next to the engine process,
and imports FUNCTIONS to sync them. PROCESSES (default 1) uvicorn worker processes share the port
(the scale-out scenario, when the app is the limit); each then counts for itself, so `GET /stats`
answers for one of them only.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

try:
    import durable_sdk
except ImportError:  # not installed (`make install` does): use the SDK from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdks" / "python"))
    import durable_sdk

__all__ = [
    "APPROVAL_EVENT",
    "FLOW_GATED_EVENT",
    "FLOW_LIMIT",
    "FLOW_PLAIN_EVENT",
    "FLOOD_EVENT",
    "FAN_EVENT",
    "PARALLEL_EVENT",
    "SEQUENTIAL_EVENT",
    "BRANCHES",
    "FUNCTIONS",
    "NEVER_EVENT",
    "ORDER_EVENT",
    "PARK_EVENT",
    "STATS_PATH",
    "THREE_STEPS_EVENT",
    "THREE_STEPS_OFF_EVENT",
    "TWENTY_STEPS",
    "TWENTY_STEPS_EVENT",
    "durable_sdk",
]

THREE_STEPS_EVENT = "bench.three"
THREE_STEPS_OFF_EVENT = "bench.three.off"
TWENTY_STEPS_EVENT = "bench.twenty"
TWENTY_STEPS = 20
PARK_EVENT = "bench.park"
NEVER_EVENT = "bench.never"
ORDER_EVENT = "bench.order"
APPROVAL_EVENT = "bench.approval"
FLOW_GATED_EVENT = "bench.flow.gated"
FLOW_PLAIN_EVENT = "bench.flow.plain"
FLOOD_EVENT = "bench.flood"
FAN_EVENT = "bench.fan"
PARALLEL_EVENT = "bench.parallel"
SEQUENTIAL_EVENT = "bench.sequential"
BRANCHES = 10
BRANCH_S = 0.02
FLOW_LIMIT = 10
FLOW_WORK_S = 0.005
STATS_PATH = "/stats"


INVOKES: defaultdict[str, int] = defaultdict(int)  # handler calls (= invokes) per function


async def three(step: durable_sdk.Step) -> Any:
    a = await step.run("a", lambda: 1)
    b = await step.run("b", lambda: 2)
    c = await step.run("c", lambda: 3)
    return a + b + c


@durable_sdk.function(id="three-steps", trigger={"event": THREE_STEPS_EVENT})
async def three_steps(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["three-steps"] += 1
    return await three(step)


@durable_sdk.function(id="three-steps-off", trigger={"event": THREE_STEPS_OFF_EVENT}, checkpoint=False)
async def three_steps_off(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["three-steps-off"] += 1
    return await three(step)


@durable_sdk.function(id="twenty-steps", trigger={"event": TWENTY_STEPS_EVENT})
async def twenty_steps(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["twenty-steps"] += 1
    total = 0
    for i in range(TWENTY_STEPS):
        total += await step.run(f"s{i}", lambda i=i: i)
    return total


@durable_sdk.function(id="parked", trigger={"event": PARK_EVENT})
async def parked(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    return await step.wait_for_event("w", event=NEVER_EVENT, timeout="1h")


@durable_sdk.function(id="await-approval", trigger={"event": ORDER_EVENT})
async def await_approval(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    order = event["data"]["orderId"]
    return await step.wait_for_event("approval", event=APPROVAL_EVENT, match={"orderId": order}, timeout="1h")


class Executing:
    """How many runs of one function are inside their step at once, per tenant and overall."""

    def __init__(self) -> None:
        self.now: defaultdict[str, int] = defaultdict(int)
        self.max_per_key: defaultdict[str, int] = defaultdict(int)
        self.overall = 0
        self.overall_max = 0
        self.steps = 0

    async def work(self, tenant: str, seconds: float = FLOW_WORK_S) -> None:
        """One step's body: record the start, simulate work (5 ms unless the event says), record the end."""
        self.now[tenant] += 1
        self.max_per_key[tenant] = max(self.max_per_key[tenant], self.now[tenant])
        self.overall += 1
        self.overall_max = max(self.overall_max, self.overall)
        self.steps += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now[tenant] -= 1
            self.overall -= 1

    def report(self) -> dict[str, Any]:
        return {"maxPerKey": dict(self.max_per_key), "overall_max": self.overall_max, "steps": self.steps}


STATS = {"burst-gated": Executing(), "burst-plain": Executing()}


@durable_sdk.function(
    id="burst-gated",
    trigger={"event": FLOW_GATED_EVENT},
    concurrency={"limit": FLOW_LIMIT, "key": "tenant"},
)
async def burst_gated(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    tenant, seconds = event["data"]["tenant"], event["data"].get("workMs", FLOW_WORK_S * 1000) / 1000
    await step.run("work", lambda: STATS["burst-gated"].work(tenant, seconds))


@durable_sdk.function(id="burst-plain", trigger={"event": FLOW_PLAIN_EVENT})
async def burst_plain(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    tenant = event["data"]["tenant"]
    await step.run("work", lambda: STATS["burst-plain"].work(tenant))


@durable_sdk.function(id="flood", trigger={"event": FLOOD_EVENT}, priority=100)
async def flood(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    await step.run("work", lambda: asyncio.sleep(event["data"].get("workMs", 500) / 1000))


@durable_sdk.function(id="fan-child", trigger=None)
async def fan_child(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["fan-child"] += 1
    return await step.run("work", lambda: event["data"]["n"] * 2)


@durable_sdk.function(id="fan-parent", trigger={"event": FAN_EVENT})
async def fan_parent(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["fan-parent"] += 1
    size = event["data"]["size"]
    calls = [step.invoke(f"child-{i}", function=fan_child, data={"n": i}) for i in range(size)]
    return sum(await asyncio.gather(*calls))


@durable_sdk.function(id="parallel-10", trigger={"event": PARALLEL_EVENT})
async def parallel_10(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["parallel-10"] += 1
    branches = [step.run(f"b{i}", lambda: asyncio.sleep(BRANCH_S)) for i in range(BRANCHES)]
    return len(await asyncio.gather(*branches))


@durable_sdk.function(id="sequential-10", trigger={"event": SEQUENTIAL_EVENT})
async def sequential_10(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    INVOKES["sequential-10"] += 1
    for i in range(BRANCHES):
        await step.run(f"b{i}", lambda: asyncio.sleep(BRANCH_S))
    return BRANCHES


FUNCTIONS = [
    three_steps,
    three_steps_off,
    twenty_steps,
    parked,
    await_approval,
    burst_gated,
    burst_plain,
    flood,
    fan_parent,
    fan_child,
    parallel_10,
    sequential_10,
]

Asgi = Callable[[dict[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]]


def with_stats(app: Asgi) -> Asgi:
    """The SDK's ASGI app, except that `GET /stats` answers {function id: Executing.report()}."""

    async def wrapper(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == STATS_PATH:
            body = orjson.dumps({**{fn: stats.report() for fn, stats in STATS.items()}, "invokes": INVOKES})
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapper


def create_app() -> Asgi:
    """The app of one process (uvicorn's factory when it runs several)."""
    return with_stats(durable_sdk.serve(FUNCTIONS, signing_key=os.environ["BENCH_SIGNING_KEY"]))


def main() -> None:
    import uvicorn

    port = int(sys.argv[1])
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
    }
    if processes == 1:
        uvicorn.run(create_app(), **options)
    else:  # several processes need the app by name; they share the port's socket
        app_dir = str(Path(__file__).resolve().parent)
        uvicorn.run("benchapp:create_app", factory=True, workers=processes, app_dir=app_dir, **options)


if __name__ == "__main__":
    main()
