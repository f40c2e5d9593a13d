"""One frozen Settings object, read from the environment once at start-up.

Every field documents its default. A bad value raises ConfigError with one line naming the variable
and what it accepts; the CLI prints that line and exits 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from durable.errors import ConfigError

ENVIRONMENTS = ("dev", "acc", "prod")


@dataclass(frozen=True)
class Settings:
    port: int = 3030
    """PORT: service and dashboard port. Defaults to 3030."""
    database_url: str | None = None
    """DATABASE_URL: an external Postgres. Defaults to unset, meaning the embedded one."""
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
    host: str = "0.0.0.0"
    """DURABLE_HOST: address the service binds. Defaults to 0.0.0.0."""
    invokes_per_worker: int = 128
    """DURABLE_INVOKES_PER_WORKER: runs one worker loop drives at once. Defaults to 128."""

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"


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


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise ConfigError on the first bad one."""
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL") or None
    if database_url is not None and not database_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError(
            f"DATABASE_URL={database_url!r} is invalid: expected a postgresql:// or postgres:// URL"
        )
    admin_token = env.get("DURABLE_ADMIN_TOKEN") or None
    if admin_token is not None and len(admin_token) < 8:
        raise ConfigError("DURABLE_ADMIN_TOKEN is invalid: expected at least 8 characters")
    environment = env.get("DURABLE_ENV", "dev") or "dev"
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"DURABLE_ENV={environment!r} is invalid: expected one of {', '.join(ENVIRONMENTS)}"
        )
    pg_dir_raw = env.get("DURABLE_PG_DIR") or "~/.durable/pgdata"
    return Settings(
        port=_int(env, "PORT", 3030, 1, 65535),
        database_url=database_url,
        pg_port=_int(env, "DURABLE_PG_PORT", 5434, 1, 65535),
        pg_dir=Path(pg_dir_raw).expanduser().resolve(),
        workers=_int(env, "DURABLE_WORKERS", 2, 0, 64),
        lease_ms=_int(env, "DURABLE_LEASE_MS", 30_000, 1000, 3_600_000),
        max_attempts=_int(env, "DURABLE_MAX_ATTEMPTS", 3, 1, 100),
        unreachable_ms=_int(env, "DURABLE_UNREACHABLE_MS", 900_000, 0, 604_800_000),
        drain_timeout_ms=_int(env, "DURABLE_DRAIN_TIMEOUT_MS", 15_000, 0, 3_600_000),
        admin_token=admin_token,
        env=environment,
        host=env.get("DURABLE_HOST", "0.0.0.0") or "0.0.0.0",
        invokes_per_worker=_int(env, "DURABLE_INVOKES_PER_WORKER", 128, 1, 10_000),
    )
