"""A setuptools ``build_py`` that builds the dashboard first when the checkout has no build of it.

``pip install <checkout>`` and ``make dist`` both end here. The engine serves the Vite build in
``src/durable/dashboard/static/``, which is not in version control; without it a wheel would hold an
engine whose ``/`` only says "dashboard not built". So when ``static/index.html`` is missing this runs
``npm ci && npm run build`` in ``dashboard/`` (Vite writes into ``static/``) before the package data is
collected, or stops the build with one message naming what to run when npm is not there.

Editable installs (``pip install -e .``, what ``make run`` does) are left alone: they serve ``static/``
from the source tree, and the Makefile builds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard"
INDEX = ROOT / "src" / "durable" / "dashboard" / "static" / "index.html"
NPM_FLAGS = ["--no-audit", "--no-fund", "--loglevel=error"]


class DashboardBuildError(SystemExit):
    """The dashboard cannot be built here; the message says what to run instead."""


def missing_npm_message() -> str:
    return (
        "durable-engine: the dashboard is not built (src/durable/dashboard/static/index.html is missing) "
        "and npm is not on PATH, so this build cannot make it. Install Node.js 20+ with npm and retry, "
        "or build it first where npm exists: `make dist` (or `cd dashboard && npm ci && npm run build`)."
    )


def ensure_dashboard(log: Callable[[str], object] = print) -> bool:
    """Build the dashboard if ``static/index.html`` is missing. True when a build ran."""
    if INDEX.is_file():
        return False
    if not (DASHBOARD / "package.json").is_file():
        raise DashboardBuildError(
            "durable-engine: the dashboard is not built (src/durable/dashboard/static/index.html is "
            "missing) and its sources (dashboard/package.json) are not here: build the wheel from a "
            "full checkout (`make dist`)."
        )
    npm = shutil.which("npm")
    if npm is None:
        raise DashboardBuildError(missing_npm_message())
    env = {**os.environ, "npm_config_update_notifier": "false"}
    for step in ("ci", "run build"):
        command = f"npm {step}"
        log(f"durable-engine: building the dashboard: {command} (in dashboard/)")
        done = subprocess.run([npm, *step.split(), *NPM_FLAGS], cwd=DASHBOARD, env=env, check=False)
        if done.returncode != 0:
            raise DashboardBuildError(
                f"durable-engine: `{command}` in dashboard/ failed with exit code {done.returncode} "
                "(its output is above); fix that, or build the dashboard yourself with "
                "`cd dashboard && npm ci && npm run build`, then retry."
            )
    if not INDEX.is_file():
        raise DashboardBuildError(
            f"durable-engine: the dashboard build finished but wrote no {INDEX.relative_to(ROOT)}"
        )
    return True


class BuildPy(build_py):
    """``build_py`` that makes sure the dashboard's files exist before package data is collected."""

    def run(self) -> None:
        if not getattr(self, "editable_mode", False) and ensure_dashboard(_say):
            # The list of package data files may have been computed before the build wrote them.
            self.__dict__.pop("data_files", None)
        super().run()


def _say(message: str) -> None:
    print(message, flush=True)
