"""The README walk-through, for real: `durable start`, the example app as a process, the SDK Client."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import durable_sdk
import httpx

from tests.e2e.procs import ROOT, Proc, child_env, engine_env
from tests.e2e.test_crash_recovery import _provision, _wait_completed
from tests.harness import free_port


def test_example_app_onboarding_and_approval(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    app_proc: subprocess.Popen[bytes] | None = None
    log = open(tmp_path / "app.log", "wb")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base, "demo")
        port = free_port()
        env = child_env()
        env.update(
            {
                "DURABLE_URL": base,
                "DURABLE_APP_ID": app_id,
                "DURABLE_SIGNING_KEY": key,
                "PORT": str(port),
                "PYTHONPATH": str(ROOT / "sdks" / "python"),
            }
        )
        app_proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples/python/app.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while "synced" not in (tmp_path / "app.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "app.log").read_text()
            time.sleep(0.1)

        client = durable_sdk.Client(base_url=base, app_id=app_id, signing_key=key)
        client.send("user.created", {"userId": "ada"})
        client.send("order.placed", {"orderId": "o1"})
        deadline = time.monotonic() + 20
        while not httpx.get(f"{base}/api/apps/{app_id}/runs", params={"activity": "waiting"}).json()["items"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.send("approval.received", {"orderId": "o1", "by": "bob"})
        deadline = time.monotonic() + 30
        while True:  # the example's cron function may complete runs too: wait for these two
            runs = _wait_completed(base, app_id, 1, timeout=30)
            if {"onboarding", "approval"} <= {r["functionId"] for r in runs}:
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.1)
        outputs = {r["functionId"]: httpx.get(f"{base}/api/runs/{r['id']}").json()["output"] for r in runs}
    finally:
        engine.stop()
        if app_proc:
            app_proc.terminate()
            app_proc.wait(10)
            log.close()
    assert outputs["approval"] == {"orderId": "o1", "approved": True, "by": "bob"}
    assert outputs["onboarding"]["user"] == "ada"
