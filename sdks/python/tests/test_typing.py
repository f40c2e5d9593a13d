"""The SDK's types, checked like the engine's: handlers typed with AsyncStep / SyncStep pass mypy --strict,
and the usual mistakes (a wrong result type, a forgotten await) are reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent / "typing"
SDK = Path(__file__).parents[1]


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_typed_handlers_pass_mypy_strict() -> None:
    result = _mypy(HERE / "good.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_types_and_a_forgotten_await_are_reported() -> None:
    result = _mypy(HERE / "bad.py")
    assert result.returncode == 1, result.stdout
    assert 'expected "Callable[[], Awaitable[str]]"' in result.stdout  # run[T]: T is the step's result
    assert 'Maybe you forgot to use "await"?' in result.stdout
    assert 'Argument "checkpoint" to "function" has incompatible type' in result.stdout
    assert 'Argument "max_steps" to "Checkpoint" has incompatible type "str"; expected "int"' in result.stdout
