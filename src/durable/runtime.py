"""The processes: `durable start` (API + scheduler + workers) and `durable worker` (workers only).

Shutdown: the first SIGINT/SIGTERM stops taking work, lets in-flight invokes finish within
DURABLE_DRAIN_TIMEOUT_MS and exits 0 (what is abandoned recovers by lease expiry); a second signal
exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from durable import __version__
from durable.api.app import create_app
from durable.config import Settings
from durable.engine.changes import ChangeFeed
from durable.engine.execution import Executor, invoke_timeout
from durable.scheduler.cron import run_cron
from durable.scheduler.maintenance import run_maintenance
from durable.store import embedded
from durable.store.db import Database
from durable.store.migrate import migrate
from durable.worker.invoke import Invoker
from durable.worker.loop import LocalDispatch, Wakeup, WorkerLoop, worker_name

log = logging.getLogger("durable")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns signals and drains workers too."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def prepare_database(settings: Settings, *, start_embedded: bool) -> bool:
    """Start (or find) the embedded Postgres when no DATABASE_URL is set; apply migrations."""
    started = False
    if settings.embedded:
        if start_embedded:
            started = await asyncio.to_thread(embedded.ensure_running, settings.pg_dir, settings.pg_port)
        elif not embedded._port_open(settings.pg_port):
            raise SystemExit(
                f"durable worker: no Postgres on 127.0.0.1:{settings.pg_port}: "
                "run `durable start` first, or set DATABASE_URL"
            )
    await migrate(settings.dsn)
    return started


class Runtime:
    def __init__(self, settings: Settings, *, serve_http: bool) -> None:
        self.settings = settings
        self.serve_http = serve_http
        self.stop = asyncio.Event()
        self.signals = 0

    def _on_signal(self) -> None:
        self.signals += 1
        if self.signals > 1:
            log.warning("second signal: exiting now")
            os._exit(1)
        log.info(
            "draining (up to %d ms); send the signal again to exit at once", self.settings.drain_timeout_ms
        )
        self.stop.set()

    async def run(self) -> int:
        settings = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        started_pg = await prepare_database(settings, start_embedded=self.serve_http)
        db = await Database.connect(settings.dsn, max_size=max(10, 10 * settings.workers))
        wakeup = Wakeup()
        await wakeup.start(settings.dsn)
        invoker = Invoker(
            timeout_ms=invoke_timeout(settings.lease_ms),
            user_agent=f"durable/{__version__} (pid {os.getpid()})",
        )
        feed = ChangeFeed(db)
        executor = Executor(
            db,
            lease_ms=settings.lease_ms,
            default_max_attempts=settings.max_attempts,
            feed=feed,
            unreachable_ms=settings.unreachable_ms,
        )
        loops = [
            WorkerLoop(executor, invoker, wakeup, name=worker_name(i), capacity=settings.invokes_per_worker)
            for i in range(settings.workers)
        ]
        tasks = [asyncio.create_task(w.run()) for w in loops]
        feed_stop = asyncio.Event()
        feed_task = asyncio.create_task(feed.run(feed_stop))
        server: _Server | None = None
        if self.serve_http:
            tasks.append(asyncio.create_task(run_maintenance(db, self.stop)))
            tasks.append(asyncio.create_task(run_cron(db, self.stop)))
            dispatch = LocalDispatch(
                loops, lease_ms=settings.lease_ms, default_max_attempts=settings.max_attempts
            )
            app = create_app(db, settings, on_ingest=wakeup.set, feed=feed, dispatcher=dispatch)
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                loop="none",
                http="httptools",
                timeout_graceful_shutdown=max(1, settings.drain_timeout_ms // 1000),
            )
            server = _Server(config)
            tasks.append(asyncio.create_task(server.serve()))
            log.info("durable listening on http://%s:%d", settings.host, settings.port)
        log.info("%d worker loop(s) running", len(loops))
        await self.stop.wait()

        for w in loops:
            w.stop()
        if server is not None:
            await app.state.broadcaster.close()
            server.should_exit = True
        timeout_s = settings.drain_timeout_ms / 1000
        abandoned = sum(await asyncio.gather(*(w.drain(timeout_s) for w in loops)))
        if abandoned:
            log.warning("%d run(s) abandoned to lease expiry", abandoned)
        await asyncio.wait(tasks, timeout=timeout_s + 1)
        feed_stop.set()
        await asyncio.wait([feed_task], timeout=2)
        await invoker.close()
        await wakeup.close()
        await db.close()
        if started_pg:
            await asyncio.to_thread(embedded.stop, settings.pg_dir)
        return 0


def run(settings: Settings, *, serve_http: bool) -> int:
    import uvloop

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return uvloop.run(Runtime(settings, serve_http=serve_http).run())
