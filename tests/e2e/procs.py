"""Real `durable` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """`python -m durable <command>` with its output in a log file."""

    def __init__(self, command: str, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.log_path = log_dir / f"{name}.log"
        self.port = int(env.get("PORT", "0"))
        full_env = child_env(**env)
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "durable", command],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited with {self.popen.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {needle!r}:\n{self.log()}")
            time.sleep(0.05)

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited with {self.popen.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"engine not healthy:\n{self.log()}")
            time.sleep(0.1)

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def term(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one's (tests/conftest.py scrubbed every DURABLE_*
    variable and DATABASE_URL at start-up) plus `extra`."""
    return {**os.environ, **extra}


def engine_env(dsn: str, **extra: Any) -> dict[str, str]:
    env = {"DATABASE_URL": dsn, "PORT": str(free_port()), "DURABLE_LEASE_MS": "2000"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def refused_start(env: dict[str, str], command: str = "start") -> str:
    """Run `durable <command>` expecting it to refuse at start-up (exit 2) with one line on stderr;
    return that line."""
    result = subprocess.run(
        [sys.executable, "-m", "durable", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
