"""`durable dev`: engine, worker and the three demo apps; a crashed app restarts; Ctrl-C stops all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import durable_sdk
import httpx
import psutil

from tests.e2e.procs import ROOT, child_env
from tests.harness import free_port

DEMOS = ("demo-python", "demo-typescript", "demo-php")


def _wait(predicate, what: str, timeout: float, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


def test_dev_runs_the_stack_restarts_a_crashed_app_and_stops_on_ctrl_c(dsn: str, tmp_path: Path) -> None:
    port = free_port()
    env = child_env()
    env.update({"DATABASE_URL": dsn, "PORT": str(port), "DURABLE_DEV_APP_PORT": str(free_port())})
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "durable", "dev"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def synced() -> bool:
            try:
                items = httpx.get(f"{base}/api/apps").json()["items"]
            except httpx.HTTPError:
                return False
            return {a["name"] for a in items if a["functionCount"] == 4} >= set(DEMOS)

        _wait(synced, "the three demo apps to sync four functions each", 90, log)
        run_ids = {}
        for name in DEMOS:
            ws = httpx.post(f"{base}/api/apps", json={"name": name, "environment": "dev"}).json()
            client = durable_sdk.Client(base_url=base, app_id=ws["id"], signing_key=ws["signingKey"])
            client.send("user.created", {"userId": f"u-{name}"})
            run_ids[name] = ws["id"]

        def onboarded() -> bool:
            for app_id in run_ids.values():
                runs = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"status": "completed"}).json()[
                    "items"
                ]
                if not any(r["functionId"] == "onboarding" for r in runs):
                    return False
            return True

        _wait(onboarded, "onboarding (with its 2 s sleep) to complete in every demo app", 60, log)

        # kill -9 the Python demo app: the supervisor restarts it.
        children = psutil.Process(dev.pid).children(recursive=True)
        app = next(c for c in children if "examples/python/app.py" in " ".join(c.cmdline()))
        app.kill()
        _wait(lambda: "python-app | exited with" in log.read_text(), "the crash to be noticed", 10, log)
        _wait(lambda: log.read_text().count("synced") >= 2, "the python app to come back and sync", 30, log)
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "stopping: apps first" in text and "engine | " in text and "draining" in text
    assert not psutil.pid_exists(dev.pid) or psutil.Process(dev.pid).status() == psutil.STATUS_ZOMBIE
