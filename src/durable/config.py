"""One frozen Settings object, read from the environment once at start-up.

Every field documents its default. A bad value raises ConfigError with one line naming the variable
and what it accepts; the CLI prints that line and exits 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from durable.core.outbound import AllowList, parse_allow
from durable.errors import ConfigError

ENVIRONMENTS = ("dev", "acc", "prod")


@dataclass(frozen=True)
class Settings:
    port: int = 3030
    """PORT: service and dashboard port. Defaults to 3030."""
    database_url: str | None = None
    """DATABASE_URL: an external Postgres. Defaults to unset, meaning the embedded one."""
    database_direct_url: str | None = None
    """DATABASE_DIRECT_URL: the same Postgres reached without a pooler, for what needs a session (LISTEN,
    migrations). Setting it says DATABASE_URL is a transaction-mode pooler (PgBouncer, Supabase's or
    Neon's pooled endpoint): the pool then keeps no prepared statement and no session state
    (docs/self-hosting.md). Defaults to unset: DATABASE_URL serves everything, with prepared statements."""
    pg_port: int = 5434
    """DURABLE_PG_PORT: TCP port of the embedded Postgres. Defaults to 5434."""
    pg_dir: Path = Path("~/.durable/pgdata").expanduser()
    """DURABLE_PG_DIR: data directory of the embedded Postgres. Defaults to ~/.durable/pgdata."""
    workers: int = 2
    """DURABLE_WORKERS: worker loops per process. Defaults to 2."""
    lease_ms: int = 30_000
    """DURABLE_LEASE_MS: job lease and app-call timeout. Defaults to 30000."""
    max_attempts: int = 3
    """DURABLE_MAX_ATTEMPTS: attempts of a step before the run fails. Defaults to 3."""
    unreachable_ms: int = 900_000
    """DURABLE_UNREACHABLE_MS: how long the app may be unreachable (refused, DNS, connect timeout,
    502/503/504) without a break before a run trying to call it fails. Defaults to 900000 (15 min)."""
    drain_timeout_ms: int = 15_000
    """DURABLE_DRAIN_TIMEOUT_MS: graceful-drain bound. Defaults to 15000."""
    admin_token: str | None = None
    """DURABLE_ADMIN_TOKEN: when set, the dashboard, admin API and SSE require it. Defaults to unset."""
    env: str = "dev"
    """DURABLE_ENV: environment used when an app self-provisions. Defaults to dev."""
    host: str = "127.0.0.1"
    """DURABLE_HOST: address the service binds. Defaults to 127.0.0.1 (loopback only): binding any other
    address needs DURABLE_ADMIN_TOKEN, or DURABLE_INSECURE=1 (see `exposure_problem`)."""
    insecure: bool = False
    """DURABLE_INSECURE: 1 lets the service bind a non-loopback address without an admin token (logged as
    a loud warning at start). Defaults to 0."""
    allowed_hosts: tuple[str, ...] = ()
    """DURABLE_ALLOWED_HOSTS: comma-separated host names a request's Host header may name, besides the
    address the connection arrived at, localhost, 127.0.0.1 and [::1] (DNS rebinding). Defaults to none."""
    metrics_token: str | None = None
    """DURABLE_METRICS_TOKEN: a bearer token that reads /metrics only (for Prometheus). Defaults to
    unset: /metrics then takes the admin token (open when none is set)."""
    session_ttl_ms: int = 43_200_000
    """DURABLE_SESSION_TTL_MS: how long a dashboard sign-in lasts. Defaults to 43200000 (12 h)."""
    invokes_per_worker: int = 128
    """DURABLE_INVOKES_PER_WORKER: runs one worker loop drives at once. Defaults to 128."""
    request_timeout_ms: int = 30_000
    """DURABLE_REQUEST_TIMEOUT_MS: how long a client may take to send one whole request (headers and
    body) before the connection is closed, so slow clients cannot hold connections open. Defaults to
    30000."""
    app_url_allow: AllowList | None = None
    """DURABLE_APP_URL_ALLOW: comma-separated host names, `*.suffix` patterns, IPs and CIDRs that sync
    URLs may point at (core/outbound.py). Defaults to unset: any host but the engine's own origin."""

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def dsn(self) -> str:
        """DATABASE_URL, or the embedded Postgres with the password from its data directory.

        Read at each use, not at load: `durable start` writes the file at initdb (or when it upgrades a
        trust-auth directory), after the settings were loaded. Never log this value.
        """
        if self.database_url:
            return self.database_url
        return embedded_dsn(self.pg_dir, self.pg_port)

    @property
    def pooled(self) -> bool:
        """Whether `dsn` is a transaction-mode pooler: DATABASE_DIRECT_URL is set.

        The direct URL is the signal, rather than a flag of its own, because a transaction pooler cannot
        carry LISTEN, so a pooled deployment must name a direct URL anyway; one variable then leaves no
        broken combination (a pooler flag without a direct URL would LISTEN through the pooler and miss
        notifications). Naming a direct URL in front of a session-mode pooler only costs the
        prepared-statement speed-up, never correctness.
        """
        return self.database_direct_url is not None

    @property
    def direct_dsn(self) -> str:
        """Where session work connects (LISTEN, migrations): DATABASE_DIRECT_URL, else `dsn`."""
        return self.database_direct_url or self.dsn


PASSWORD_FILE = "durable-password"
"""The embedded Postgres superuser's password, in its data directory, mode 0600, owned by the user that
runs Durable (store/embedded.py writes it)."""


def embedded_password(pg_dir: Path) -> str | None:
    """The embedded Postgres password, or None when the file is missing (no `durable start` yet)."""
    try:
        return (pg_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def embedded_dsn(pg_dir: Path, port: int, database: str = "postgres") -> str:
    """The DSN of the embedded Postgres on 127.0.0.1:`port`, with the password when there is one."""
    password = embedded_password(pg_dir)
    auth = f"postgres:{quote(password, safe='')}" if password else "postgres"
    return f"postgresql://{auth}@127.0.0.1:{port}/{database}"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} is invalid: expected an integer from {low} to {high}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "0").strip().lower()
    if raw not in ("0", "1", "true", "false"):
        raise ConfigError(f"{name}={raw!r} is invalid: expected 1 or 0")
    return raw in ("1", "true")


_HOST_NAME = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$")


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Host names (no scheme, no port), lower-cased; `[::1]`-style brackets for IPv6."""
    hosts = []
    for item in (env.get(name) or "").split(","):
        host = item.strip().lower()
        if not host:
            continue
        if not _HOST_NAME.match(host):
            raise ConfigError(
                f"{name} entry {host!r} is invalid: expected comma-separated host names without scheme "
                "or port (durable.example.com, 10.0.0.5, [fd00::1])"
            )
        hosts.append(host)
    return tuple(hosts)


def _direct_url(env: Mapping[str, str], database_url: str | None) -> str | None:
    """DATABASE_DIRECT_URL, checked against DATABASE_URL. Its value is never echoed: it holds a password."""
    direct = env.get("DATABASE_DIRECT_URL") or None
    if direct is None:
        return None
    if not direct.startswith(("postgres://", "postgresql://")):
        raise ConfigError("DATABASE_DIRECT_URL is invalid: expected a postgresql:// or postgres:// URL")
    if database_url is None:
        raise ConfigError(
            "DATABASE_DIRECT_URL is set without DATABASE_URL: expected DATABASE_URL too (the pooled URL; "
            "the embedded Postgres has no pooler)"
        )
    if direct == database_url:
        raise ConfigError(
            "DATABASE_DIRECT_URL is invalid: it equals DATABASE_URL; expected the URL of the Postgres "
            "behind the pooler (not the pooler's), or DATABASE_DIRECT_URL unset when there is no pooler"
        )
    return direct


def is_loopback(host: str) -> bool:
    """Whether an address (or `localhost`) names this machine's loopback interface only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def exposure_problem(settings: Settings) -> str | None:
    """The one-line reason `durable start` refuses to serve, or None.

    Binding a non-loopback address puts the admin API (which hands out signing keys) on the network,
    so it needs an admin token; DURABLE_INSECURE=1 is the explicit, logged way to do it anyway.
    """
    if is_loopback(settings.host) or settings.admin_token is not None or settings.insecure:
        return None
    return (
        f"DURABLE_HOST={settings.host!r} is refused: a non-loopback address without DURABLE_ADMIN_TOKEN "
        "exposes the admin API and every signing key; expected DURABLE_ADMIN_TOKEN set "
        "(or DURABLE_HOST=127.0.0.1, or DURABLE_INSECURE=1 to run exposed anyway)"
    )


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise ConfigError on the first bad one."""
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL") or None
    if database_url is not None and not database_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError(
            f"DATABASE_URL={database_url!r} is invalid: expected a postgresql:// or postgres:// URL"
        )
    database_direct_url = _direct_url(env, database_url)
    admin_token = env.get("DURABLE_ADMIN_TOKEN") or None
    if admin_token is not None and len(admin_token) < 8:
        raise ConfigError("DURABLE_ADMIN_TOKEN is invalid: expected at least 8 characters")
    environment = env.get("DURABLE_ENV", "dev") or "dev"
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"DURABLE_ENV={environment!r} is invalid: expected one of {', '.join(ENVIRONMENTS)}"
        )
    pg_dir_raw = env.get("DURABLE_PG_DIR") or "~/.durable/pgdata"
    metrics_token = env.get("DURABLE_METRICS_TOKEN") or None
    try:
        app_url_allow = parse_allow(env.get("DURABLE_APP_URL_ALLOW") or "")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if metrics_token is not None and len(metrics_token) < 8:
        raise ConfigError("DURABLE_METRICS_TOKEN is invalid: expected at least 8 characters")
    return Settings(
        port=_int(env, "PORT", 3030, 1, 65535),
        database_url=database_url,
        database_direct_url=database_direct_url,
        pg_port=_int(env, "DURABLE_PG_PORT", 5434, 1, 65535),
        pg_dir=Path(pg_dir_raw).expanduser().resolve(),
        workers=_int(env, "DURABLE_WORKERS", 2, 0, 64),
        lease_ms=_int(env, "DURABLE_LEASE_MS", 30_000, 1000, 3_600_000),
        max_attempts=_int(env, "DURABLE_MAX_ATTEMPTS", 3, 1, 100),
        unreachable_ms=_int(env, "DURABLE_UNREACHABLE_MS", 900_000, 0, 604_800_000),
        drain_timeout_ms=_int(env, "DURABLE_DRAIN_TIMEOUT_MS", 15_000, 0, 3_600_000),
        admin_token=admin_token,
        env=environment,
        host=env.get("DURABLE_HOST", "127.0.0.1").strip() or "127.0.0.1",
        insecure=_flag(env, "DURABLE_INSECURE"),
        allowed_hosts=_hosts(env, "DURABLE_ALLOWED_HOSTS"),
        metrics_token=metrics_token,
        session_ttl_ms=_int(env, "DURABLE_SESSION_TTL_MS", 43_200_000, 60_000, 2_592_000_000),
        invokes_per_worker=_int(env, "DURABLE_INVOKES_PER_WORKER", 128, 1, 10_000),
        request_timeout_ms=_int(env, "DURABLE_REQUEST_TIMEOUT_MS", 30_000, 100, 3_600_000),
        app_url_allow=app_url_allow,
    )
