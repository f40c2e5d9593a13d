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
from contextlib import contextmanager, suppress

import uvicorn

from durable import __version__
from durable.api.app import create_app
from durable.api.connections import MAX_CONNECTIONS, bounded_http
from durable.config import Settings, embedded_password, exposure_problem, is_loopback
from durable.engine.changes import ChangeFeed
from durable.engine.execution import Executor, invoke_timeout
from durable.engine.tracing import setup_tracing
from durable.scheduler.cron import run_cron
from durable.scheduler.maintenance import keep_statistics, run_maintenance
from durable.store import embedded
from durable.store.db import Database
from durable.store.migrate import migrate
from durable.worker.invoke import Invoker
from durable.worker.loop import LocalDispatch, Wakeup, WorkerLoop, worker_name

log = logging.getLogger("durable")

TICK_S = 1.0  # the HTTP server's housekeeping tick (uvicorn's own is 0.1 s)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the runtime owns signals and drains workers too), and
    without its tenth-of-a-second poll: uvicorn's main loop wakes ten times a second to look at
    `should_exit`, which is half of what an idle engine would wake for. Here it ticks once a second
    (the Date header it refreshes has a resolution of a second) and an exit request wakes it at once.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        counter = 0  # uvicorn's on_tick refreshes the Date header when the counter is a multiple of 10
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000
            with suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), TICK_S)


async def prepare_database(settings: Settings, *, start_embedded: bool) -> bool:
    """Start (or find) the embedded Postgres when no DATABASE_URL is set; apply migrations (over
    DATABASE_DIRECT_URL when DATABASE_URL is a pooler)."""
    started = False
    if settings.embedded:
        if start_embedded:
            started = await asyncio.to_thread(embedded.ensure_running, settings.pg_dir, settings.pg_port)
        elif not embedded._port_open(settings.pg_port):
            raise SystemExit(
                f"durable worker: no Postgres on 127.0.0.1:{settings.pg_port}: "
                "run `durable start` first, or set DATABASE_URL"
            )
        else:
            _check_password_file(settings)
    await migrate(settings.direct_dsn)  # under a session: never through a transaction pooler
    return started


def _check_password_file(settings: Settings) -> None:
    """`durable worker` on the embedded Postgres needs the password `durable start` wrote."""
    path = embedded.password_path(settings.pg_dir)
    try:
        found = embedded_password(settings.pg_dir) is not None
    except PermissionError:
        raise SystemExit(
            f"durable worker: cannot read {path}: run the worker as the user that runs `durable start`, "
            "or set DATABASE_URL"
        ) from None
    if not found:
        raise SystemExit(
            f"durable worker: no password file {path}: run `durable start` on this host first "
            "(DURABLE_PG_DIR must name the same directory), or set DATABASE_URL"
        )


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
        db = await Database.connect(
            settings.dsn, pooled=settings.pooled, max_size=max(10, 10 * settings.workers)
        )
        if settings.pooled:
            log.info("pooled: DATABASE_URL without prepared statements; LISTEN on DATABASE_DIRECT_URL")
        wakeup = Wakeup()
        await wakeup.start(settings.direct_dsn)  # LISTEN needs a session
        invoker = Invoker(
            timeout_ms=invoke_timeout(settings.lease_ms),
            user_agent=f"durable/{__version__} (pid {os.getpid()})",
            own_port=settings.port,
            own_host=settings.host,
            allow=settings.app_url_allow,
            tracing=setup_tracing(__version__),  # OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set
        )
        feed = ChangeFeed(db)
        db.on_change = feed.touch  # what engine transactions changed, announced after each commit
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
            tasks.append(asyncio.create_task(keep_statistics(db, self.stop)))
            synced = asyncio.Event()  # set by POST /fn/sync: the cron loop looks again at once
            tasks.append(asyncio.create_task(run_cron(db, self.stop, synced)))
            dispatch = LocalDispatch(
                loops, lease_ms=settings.lease_ms, default_max_attempts=settings.max_attempts
            )
            app = create_app(
                db, settings, on_ingest=wakeup.set, feed=feed, dispatcher=dispatch, on_sync=synced.set
            )
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                loop="none",
                # httptools, with the read deadline and header bound uvicorn lacks (slow clients).
                http=bounded_http(settings.request_timeout_ms / 1000),
                limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=5,  # an idle kept-alive connection closes after 5 s
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

    if serve_http:
        # Refused before anything starts, in the one-line form of a bad variable (exit 2).
        problem = exposure_problem(settings)
        if problem is not None:
            print(f"durable: {problem}", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if serve_http and settings.admin_token is None and not is_loopback(settings.host):
        log.warning(
            "INSECURE: DURABLE_INSECURE=1 serves %s with NO admin token: anyone who can reach it can read "
            "runs, fire events and cancel work; set DURABLE_ADMIN_TOKEN",
            settings.host,
        )
    return uvloop.run(Runtime(settings, serve_http=serve_http).run())
