"""`durable dev`: the full local stack in one command, from a checkout of the repository.

Starts the engine (`durable start`), one extra `durable worker`, and the three demo apps (Python,
TypeScript, PHP), each in its own workspace (demo-python, demo-typescript, demo-php). Every line a
child prints is prefixed with its name; a child that exits is restarted (with a growing pause); the
first Ctrl-C (or SIGTERM) stops the apps, then lets the worker and the engine drain, and exits 0; a
second one kills everything at once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from durable.config import Settings

COLORS = ("\033[36m", "\033[35m", "\033[32m", "\033[33m", "\033[34m")
RESET = "\033[0m"
RESTART_PAUSES_S = (1, 2, 5, 10)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    color: str = ""


def find_checkout() -> Path:
    """The repository root: the current directory or a parent of it, or the one this package is in."""
    here = Path.cwd()
    for candidate in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (candidate / "examples" / "python" / "app.py").exists():
            return candidate
    raise SystemExit(
        "durable dev: run it from a checkout of the Durable repository (it starts the demo apps)"
    )


def children(root: Path, settings: Settings) -> tuple[list[Child], list[str]]:
    """The processes of the stack, and a note for each demo app that cannot start here.

    The demo apps listen on DURABLE_DEV_APP_PORT (default 4000) and the next two ports.
    """
    python = sys.executable
    base = {"DURABLE_URL": f"http://127.0.0.1:{settings.port}"}
    first = int(os.environ.get("DURABLE_DEV_APP_PORT") or 4000)
    stack = [
        Child("engine", [python, "-m", "durable", "start"]),
        Child("worker", [python, "-m", "durable", "worker"]),
        Child("python-app", [python, str(root / "examples/python/app.py")], {**base, "PORT": str(first)}),
    ]
    notes = []
    ts_app = root / "examples/typescript/app.mjs"
    if shutil.which("node") and ts_app.exists() and (root / "sdks/typescript/dist/index.js").exists():
        stack.append(Child("typescript-app", ["node", str(ts_app)], {**base, "PORT": str(first + 1)}))
    else:
        notes.append("typescript-app: needs node and a built SDK (make install-sdks)")
    php_app = root / "sdks/php/example/run.sh"
    if shutil.which("php") and php_app.exists():
        stack.append(Child("php-app", ["sh", str(php_app)], {**base, "PORT": str(first + 2)}))
    else:
        notes.append("php-app: needs php-cli (apt-get install php-cli, or make system-deps)")
    if sys.stdout.isatty():
        for i, child in enumerate(stack):
            child.color = COLORS[i % len(COLORS)]
    return stack, notes


class Supervisor:
    def __init__(self, stack: list[Child], settings: Settings) -> None:
        self.stack = stack
        self.settings = settings
        self.stopping = False
        self.signals = 0
        self.width = max(len(c.name) for c in stack)

    def say(self, child: Child | None, line: str) -> None:
        name = child.name if child else "dev"
        color = child.color if child else ""
        reset = RESET if color else ""
        sys.stdout.write(f"{color}{name:>{self.width}} |{reset} {line}\n")
        sys.stdout.flush()

    async def start(self, child: Child) -> None:
        env = {**os.environ, **child.env, "PYTHONUNBUFFERED": "1"}
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        asyncio.create_task(self.watch(child, child.process))

    async def watch(self, child: Child, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            self.say(child, raw.decode(errors="replace").rstrip())
        code = await process.wait()
        if self.stopping:
            self.say(child, f"stopped ({code})")
            return
        pause = RESTART_PAUSES_S[min(child.restarts, len(RESTART_PAUSES_S) - 1)]
        child.restarts += 1
        self.say(child, f"exited with {code}; restarting in {pause} s")
        await asyncio.sleep(pause)
        if not self.stopping:
            await self.start(child)

    async def engine_healthy(self, timeout_s: float = 120) -> bool:
        url = f"http://127.0.0.1:{self.settings.port}/healthz"
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and not self.stopping:
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                        if response.status == 200:
                            return True
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.2)
        return False

    def on_signal(self) -> None:
        self.signals += 1
        if self.signals > 1:
            self.say(None, "second signal: killing everything")
            for child in self.stack:
                if child.process and child.process.returncode is None:
                    os.killpg(child.process.pid, signal.SIGKILL)
            os._exit(1)
        self.stopping = True
        self.done.set()

    async def run(self) -> int:
        self.done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal)
        engine, rest = self.stack[0], self.stack[1:]
        await self.start(engine)
        if not await self.engine_healthy():
            self.say(None, "the engine did not become healthy; stopping")
            self.stopping = True
        else:
            self.say(None, f"engine up: http://127.0.0.1:{self.settings.port} (Ctrl-C stops everything)")
            for child in rest:
                await self.start(child)
            await self.done.wait()
        self.say(None, "stopping: apps first, then the worker and the engine drain")
        await self.stop([c for c in rest if c.name.endswith("-app")])
        await self.stop([c for c in rest if not c.name.endswith("-app")])
        await self.stop([engine])
        return 0

    async def stop(self, children: list[Child]) -> None:
        running = [c.process for c in children if c.process and c.process.returncode is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        bound = self.settings.drain_timeout_ms / 1000 + 5
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), bound)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)


def run(settings: Settings) -> int:
    root = find_checkout()
    stack, notes = children(root, settings)
    supervisor = Supervisor(stack, settings)
    for note in notes:
        supervisor.say(None, f"not started: {note}")
    return asyncio.run(supervisor.run())
