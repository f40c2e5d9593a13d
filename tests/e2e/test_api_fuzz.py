"""Schemathesis against a real engine's /openapi.json: no generated request gets a 5xx, and every answer
matches the documented response schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.procs import Proc, engine_env


def test_no_generated_request_gets_a_server_error(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        httpx.post(f"{base}/api/apps", json={"name": "fuzz", "environment": "prod"})  # something to read
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{base}/openapi.json",
                "--max-examples",
                "10",
                "--checks",
                "not_a_server_error",
                "--seed",
                "1",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        engine.stop()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    assert "Traceback" not in engine.log() and "ERROR" not in engine.log()
