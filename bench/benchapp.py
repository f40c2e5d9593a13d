"""The benchmark's app process: the durable_sdk ASGI app under uvicorn (uvloop + httptools).

    BENCH_SIGNING_KEY=... python bench/benchapp.py PORT

`three_steps` runs three steps that do nothing; `parked` waits for an event that is never sent. The
bench starts one such process per scenario, next to the engine process, and imports FUNCTIONS to
sync them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

try:
    import durable_sdk
except ImportError:  # not installed (`make install` does): use the SDK from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdks" / "python"))
    import durable_sdk

__all__ = ["FUNCTIONS", "NEVER_EVENT", "PARK_EVENT", "THREE_STEPS_EVENT", "durable_sdk"]

THREE_STEPS_EVENT = "bench.three"
PARK_EVENT = "bench.park"
NEVER_EVENT = "bench.never"


@durable_sdk.function(id="three-steps", trigger={"event": THREE_STEPS_EVENT})
async def three_steps(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    a = await step.run("a", lambda: 1)
    b = await step.run("b", lambda: 2)
    c = await step.run("c", lambda: 3)
    return a + b + c


@durable_sdk.function(id="parked", trigger={"event": PARK_EVENT})
async def parked(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    return await step.wait_for_event("w", event=NEVER_EVENT, timeout="1h")


FUNCTIONS = [three_steps, parked]


def main() -> None:
    import uvicorn

    port = int(sys.argv[1])
    uvicorn.run(
        durable_sdk.serve(FUNCTIONS, signing_key=os.environ["BENCH_SIGNING_KEY"]),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
