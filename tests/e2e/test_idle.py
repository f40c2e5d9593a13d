"""An idle `durable start` sleeps: with nothing to do it wakes a few times a second, not twenty
(docs/decisions.md, "An idle engine sleeps"). The wake-ups are counted by the kernel: the third field of
/proc/PID/task/TID/schedstat, how many times each thread was put on a CPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.procs import Proc, engine_env

WINDOW_S = 6.0
AT_MOST_PER_S = 10  # 4.7 measured; the loops as they were woke 19.8 times a second


def _wakeups(pid: int) -> int:
    return sum(
        int((task / "schedstat").read_text().split()[2]) for task in Path(f"/proc/{pid}/task").iterdir()
    )


@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="the kernel keeps no schedstat")
def test_an_idle_engine_wakes_a_few_times_a_second(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        time.sleep(2.0)  # past start-up: the first looks of cron, statistics, the rollup
        before, start = _wakeups(engine.pid), time.monotonic()
        time.sleep(WINDOW_S)
        rate = (_wakeups(engine.pid) - before) / (time.monotonic() - start)
        assert rate <= AT_MOST_PER_S, f"{rate:.1f} wake-ups a second with nothing to do"
    finally:
        engine.stop()
