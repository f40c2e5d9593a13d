"""The pool, transactions, and the named-query loader.

SQL lives in `queries/*.sql`, one block per query headed `-- name: <name>`; code refers to queries by
name only. jsonb travels in binary through orjson.

Two ways to reach Postgres (`Database.connect(pooled=...)`):

- direct (the default): asyncpg prepares each statement once per connection, keeps it, and the session
  plans it generically (`plan_cache_mode`), so the hot path neither re-parses nor re-plans;
- pooled, through a transaction-mode pooler (PgBouncer, Supabase's and Neon's pooled endpoints): each
  transaction may run on a different server connection, so nothing may outlive one. No startup
  parameter but those every pooler forwards, no statement cache (asyncpg then sends each statement
  unnamed and re-parses it in the same message as its execution, so a statement run outside a
  transaction never meets a server that did not parse it), no session state. What needs a session
  (LISTEN, store/listen.py; migrations, store/migrate.py) connects to the direct URL instead.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from uuid import UUID

import asyncpg
import orjson

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    """Every named query of `queries/*.sql`."""
    found: dict[str, str] = {}
    folder = resources.files("durable.store") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        parts = _HEADER.split(entry.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=False):
            if name in found:
                raise RuntimeError(f"query {name!r} is defined twice")
            found[name] = body.strip()
    return found


def sql(name: str) -> str:
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in store/queries") from None


_PARAMETER = re.compile(r"\$(\d+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters an E'' literal carries escaped: the quote and backslash, and every control character (a
# literal is always one line, so a `--` comment around a parameter cannot end inside it).
_ESCAPES = {ord("'"): "''", ord("\\"): "\\\\"} | {c: f"\\u{c:04x}" for c in (*range(1, 0x20), 0x7F)}
Literal = str | int | datetime | UUID | None
# Text in a statement sent as text beyond which a write runs as a statement of its own (`Conn.write`):
# a large event is then not escaped and parsed as a literal.
MAX_TEXT_WRITE = 64 * 1024


def literal(value: Literal | Sequence[Literal]) -> str:
    """`value` as an untyped SQL literal, for a statement sent as text (`Database.text`): it takes the
    type of the parameter it stands for, as a bound value would. A string is an escape string (E'…',
    read the same whatever `standard_conforming_strings` says), a list an array literal ('{…}') of
    strings, integers, times (ISO 8601), UUIDs and NULLs. A string holding NUL is refused: Postgres text
    cannot hold it, and the protocol would cut the statement there."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError("a boolean is not rendered as an SQL literal")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | datetime | UUID):
        return _escaped(_plain(value))
    return _escaped("{" + ",".join(_element(item) for item in value) + "}")


def _plain(value: str | datetime | UUID) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, str) else str(value)


def _element(value: Literal) -> str:
    """One element of an array literal: NULL, a number, or a double-quoted text."""
    if value is None:
        return "NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str | datetime | UUID):
        return '"' + _plain(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"an array literal cannot hold {type(value).__name__}")


def _escaped(text: str) -> str:
    if _CONTROL.search(text) is None:  # JSON text, names, ids: two C-speed replacements
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    if "\x00" in text:
        raise ValueError("an SQL literal cannot hold a NUL character")
    return "E'" + text.translate(_ESCAPES) + "'"


TEXT_QUERIES = ("event_lock_names", "signature_nonce_record", "runs_create", "run_cancels_add")
"""The queries an ingest sends as text, riding with its BEGIN and COMMIT (`Database.transaction`): each
is prepared once per direct connection and sent as `EXECUTE durable_<name>(literals)`, so Postgres
neither parses nor plans it again (text parsed anew cost runs_create 0.2 ms more per ingest)."""


def simple(name: str, *args: Literal | Sequence[Literal]) -> str:
    """The named query with its parameters rendered as literals (`literal`), for a connection where
    nothing is prepared (a transaction pooler). Only for queries whose text has no block comment or
    dollar quoting, where a `$n` could stand anywhere but as a parameter."""
    text = sql(name)
    if "/*" in text or re.search(r"\$(?!\d)", text):
        raise ValueError(f"query {name!r} cannot be rendered as text (block comment or dollar quoting)")
    return _PARAMETER.sub(lambda m: literal(args[int(m.group(1)) - 1]), text.rstrip().rstrip(";"))


def executed(name: str, *args: Literal | Sequence[Literal]) -> str:
    """The prepared query `name` (one of TEXT_QUERIES) executed with `args` as literals."""
    return f"EXECUTE durable_{name}({', '.join(literal(arg) for arg in args)})"


Statement = tuple[Any, ...]
"""A query sent as text: its name (one of TEXT_QUERIES), then its arguments."""


def _text_size(args: Sequence[Any]) -> int:
    size = 0
    for arg in args:
        if isinstance(arg, str):
            size += len(arg)
        elif isinstance(arg, list | tuple):
            size += sum(len(item) for item in arg if isinstance(item, str))
    return size


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """No reset query on release: Durable keeps no session state on pooled connections (only
    transaction-scoped advisory locks, no cursors, LISTEN on its own connection), and asyncpg's default
    reset (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is a round trip per query
    (behind a transaction pooler it would also run on whichever server connection the pooler picks)."""

    text_prepared = False  # TEXT_QUERIES are prepared on it (Database._prepare_text)

    def prepared_text(self) -> None:
        """Record that TEXT_QUERIES are prepared (called through the pool's proxy, which has no
        attributes of its own)."""
        self.text_prepared = True

    def get_reset_query(self) -> str:
        return ""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


_DIRECT: dict[str, Any] = {
    # Every query is prepared once per connection; a generic plan skips re-planning the large CTE
    # statements of the hot path on each execution (measured: ingest 0.69 → 0.43 ms).
    "server_settings": {"plan_cache_mode": "force_generic_plan"},
}
_POOLED: dict[str, Any] = {
    # A pooler refuses startup parameters it does not know (PgBouncer: `unsupported startup parameter:
    # plan_cache_mode`) and a prepared statement may not outlive its transaction. Without the cache
    # every statement is parsed and planned at each execution, so a generic plan would save nothing
    # (and `SET LOCAL` would cost a round trip per transaction): the planner's default applies.
    # Measured: an ingest that starts a run takes 3.0 ms so against 1.1 ms direct (docs/self-hosting.md).
    "statement_cache_size": 0,
}


Change = tuple[str, str, str | None]
"""What a transaction changed, for the live dashboard: (app id, kind, run id or None)."""


class Conn:
    """A connection that runs named queries; in a transaction it also collects what changed
    (`changed`), published by `Database.transaction` once the transaction has committed."""

    def __init__(self, raw: asyncpg.Connection, text: Callable[[Statement], str] | None = None) -> None:
        self.raw = raw
        self.changes: list[Change] = []
        self._text = text  # renders a statement as text, in a transaction that closes by text
        # Writes sent with the COMMIT (`write`) in such a transaction; else None.
        self.closing: list[str] | None = None if text is None else []

    def changed(self, app_id: str, kind: str, run_id: str | None = None) -> None:
        """Record a change this transaction makes; it is announced after the commit, never before or
        when the transaction rolls back."""
        self.changes.append((app_id, kind, run_id))

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return await self.raw.fetch(sql(name), *args)  # type: ignore[no-any-return]

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        return await self.raw.fetchrow(sql(name), *args)

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self.raw.fetchval(sql(name), *args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self.raw.execute(sql(name), *args)  # type: ignore[no-any-return]

    async def write(self, name: str, *args: Literal | Sequence[Literal]) -> None:
        """A write whose rows no later statement of this transaction reads (nor waits on: it takes no
        lock another statement of it takes later). In a transaction that closes by text
        (`Database.transaction(opening=...)`) it is sent with the COMMIT, after every other statement
        of the transaction, at no round trip of its own; elsewhere, or with more than MAX_TEXT_WRITE
        characters of text while nothing is deferred yet, it runs now (writes keep their order)."""
        deferred = self.closing is not None and (self.closing or _text_size(args) <= MAX_TEXT_WRITE)
        if self._text is not None and self.closing is not None and deferred:
            self.closing.append(self._text((name, *args)))
        else:
            await self.raw.execute(sql(name), *args)


class Database:
    """A pool of connections to Durable's Postgres."""

    def __init__(self, pool: asyncpg.Pool, *, pooled: bool = False) -> None:
        self.pool = pool
        self.pooled = pooled  # behind a transaction pooler: nothing outlives a transaction
        self._clock_offset_ms = 0
        # Where committed changes go (engine/changes.py ChangeFeed.touch, set by the process assembly).
        self.on_change: Callable[[str, str, str | None], None] | None = None

    async def set_clock_offset(self, ms: int) -> None:
        """For tests: set the database clock (`durable_now()`, migration 0007) `ms` milliseconds ahead
        of real time (negative: behind), so leases, sleeps, wait deadlines, backoff, cron and
        flow-control windows pass without waiting. It holds for the whole database, every connection
        and process, from each one's next statement; a statement already running keeps its clock.
        The hot path pays nothing: the functions are redefined, not consulted per statement. Worker
        loops sleeping until the next due job need a wake-up (`Wakeup.set()`) to see the jump."""
        await self.execute("clock_set", int(ms))
        self._clock_offset_ms = int(ms)

    @property
    def clock_offset_ms(self) -> int:
        """The offset this pool last set (0 unless a test moved the clock)."""
        return self._clock_offset_ms

    def now(self) -> datetime:
        """Python's clock moved by the same offset: for instants the engine measures itself (an
        invoke's start and end) and stores beside database times."""
        return datetime.now(UTC) + timedelta(milliseconds=self._clock_offset_ms)

    @classmethod
    async def connect(
        cls, dsn: str, *, pooled: bool = False, min_size: int = 2, max_size: int = 20
    ) -> Database:
        """A pool on `dsn`; `pooled`: `dsn` is a transaction-mode pooler (see the module docstring)."""
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            connection_class=_PooledConnection,
            command_timeout=60,
            # A connect that hangs (a failover whose old address drops packets) fails after 5 s, so
            # requests answer 503 and loops retry instead of waiting asyncpg's default 60 s. Pool
            # connections need no health check: the pool replaces a connection the server closed on
            # its next acquire (a restart), and one that dies under a statement fails that statement
            # once (retried by loops, a 503 in the API) and is replaced when it is released.
            timeout=5,
            **(_POOLED if pooled else _DIRECT),
        )
        assert pool is not None
        return cls(pool, pooled=pooled)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as raw:
            yield Conn(raw)

    @asynccontextmanager
    async def transaction(self, *, opening: Sequence[Statement] = ()) -> AsyncIterator[Conn]:
        """A transaction; committed when the block ends, rolled back if it raises.

        With `opening` (statements of TEXT_QUERIES whose rows are not read: a lock, say) it opens and
        closes by text: they are sent in the same message as BEGIN, and the writes `Conn.write`
        deferred in the one that COMMITs, so neither costs a round trip of its own. On a direct
        connection each is a prepared statement executed with literals (`executed`); behind a pooler
        the query itself with literals (`simple`)."""
        async with self.pool.acquire() as raw:
            if not opening:
                conn = Conn(raw)
                async with raw.transaction():
                    yield conn
            else:
                await self._prepare_text(raw)
                conn = Conn(raw, self.text)
                try:
                    await raw.execute("BEGIN;\n" + ";\n".join(self.text(s) for s in opening))
                    yield conn
                    await raw.execute(";\n".join([*(conn.closing or ()), "COMMIT"]))
                except BaseException:
                    if raw.is_in_transaction():
                        with suppress(Exception):  # a connection that broke is replaced by the pool
                            await raw.execute("ROLLBACK")
                    raise
        if conn.changes and self.on_change is not None:  # committed: announce what it changed
            for change in conn.changes:
                self.on_change(*change)

    def text(self, statement: Statement) -> str:
        """`statement` as text for this database's connections."""
        name, *args = statement
        if name not in TEXT_QUERIES:
            raise ValueError(f"query {name!r} is not sent as text (db.TEXT_QUERIES)")
        return simple(name, *args) if self.pooled else executed(name, *args)

    async def _prepare_text(self, raw: asyncpg.Connection) -> None:
        """Prepare TEXT_QUERIES on a direct connection, once in its life (one round trip)."""
        if self.pooled or raw.text_prepared:
            return
        await raw.execute(
            ";\n".join(f"PREPARE durable_{name} AS {sql(name).rstrip().rstrip(';')}" for name in TEXT_QUERIES)
        )
        raw.prepared_text()

    def changed(self, app_id: str, kind: str, run_id: str | None = None) -> None:
        """Announce a change a single statement (autocommitted) has just made."""
        if self.on_change is not None:
            self.on_change(app_id, kind, run_id)

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as raw:
            return await raw.fetch(sql(name), *args)  # type: ignore[no-any-return]

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        async with self.pool.acquire() as raw:
            return await raw.fetchrow(sql(name), *args)

    async def fetchval(self, name: str, *args: Any) -> Any:
        async with self.pool.acquire() as raw:
            return await raw.fetchval(sql(name), *args)

    async def execute(self, name: str, *args: Any) -> str:
        async with self.pool.acquire() as raw:
            return await raw.execute(sql(name), *args)  # type: ignore[no-any-return]
