"""The TypeScript and PHP SDKs end to end against a real engine: each SDK's own e2e program serves its
functions, syncs, sends events and checks the runs' outputs through the API; this test provides the
engine and the workspace, and fails if the program does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.procs import ROOT, Proc, child_env, engine_env
from tests.e2e.test_crash_recovery import _provision

PROGRAMS = {
    "typescript": (["node", "dist/test/e2e.js"], ROOT / "sdks" / "typescript", "node"),
    "php": (["php", "tests/e2e.php"], ROOT / "sdks" / "php", "php"),
}


@pytest.mark.parametrize("sdk", sorted(PROGRAMS))
def test_sdk_end_to_end(sdk: str, dsn: str, tmp_path: Path) -> None:
    argv, cwd, tool = PROGRAMS[sdk]
    assert shutil.which(tool), f"{tool} is not installed: run `make test`, which installs it"
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base, f"e2e-{sdk}")
        env = child_env()
        env.update({"DURABLE_URL": base, "DURABLE_APP_ID": app_id, "DURABLE_SIGNING_KEY": key})
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    finally:
        engine.stop()
    assert result.returncode == 0, (
        f"{result.stdout}\n{result.stderr}\n--- engine log ---\n{engine.log()[-3000:]}"
    )
