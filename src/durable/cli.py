"""`durable`: the engine's commands (start, worker, migrate, dev) and the client commands (apps, send,
runs, functions) that talk to a running engine over its HTTP API. argparse, no framework.

The engine commands read their settings from the environment (`durable.config`); `durable start
--help` lists every variable from `Settings`' own field docstrings, so the list cannot fall behind.
The client commands never read those settings (a bad PORT does not stop `durable runs list`); their
options are in `durable.cli_parser`, their handlers in `durable.cli_commands`. Exit codes: 0 done,
1 the API refused, 2 usage or configuration, 3 the engine is unreachable.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import sys
import textwrap
from pathlib import Path

from durable import __version__
from durable.cli_commands import run as run_client
from durable.cli_parser import add_client_commands, add_global_options

ENGINE_COMMANDS = ("start", "worker", "migrate", "dev")

_DESCRIPTION = """\
Durable: durable execution on Postgres.

`durable` (the same as `durable start`) runs the engine; the client commands (apps, send, runs,
functions) talk to a running engine over its HTTP API."""

_EPILOG = """\
examples:
  durable start                                   # engine + dashboard on http://127.0.0.1:3030
  durable apps create shop --env dev --env-file .env
  set -a; . ./.env; set +a
  durable send user.created --data '{"userId": "u1"}'
  durable runs list --app "$DURABLE_APP_ID"
  durable runs show RUN_ID --json | jq .output

exit codes: 0 done · 1 the API refused (its message is printed) · 2 usage or configuration error ·
3 the engine is unreachable
`durable COMMAND --help` describes each command; docs/cli.md has them all."""


def settings_variables(source: str | None = None) -> list[tuple[str, str]]:
    """(variable, description) for every `Settings` field whose docstring starts with `NAME: `.

    Read from durable/config.py's source, so a field added there is listed without a change here.
    """
    if source is None:
        try:
            source = (Path(__file__).parent / "config.py").read_text(encoding="utf-8")
        except OSError:
            return []
    tree = ast.parse(source)
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == "Settings"):
            continue
        for field, doc in zip(node.body, node.body[1:], strict=False):
            if not isinstance(field, ast.AnnAssign):
                continue
            if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)):
                continue
            text = doc.value.value
            if not isinstance(text, str):
                continue
            name, sep, rest = text.partition(":")
            if sep and name and all(c.isupper() or c.isdigit() or c in "_ /" for c in name):
                found.append((name.strip(), " ".join(rest.split())))
    return found


def environment_help(variables: list[tuple[str, str]] | None = None) -> str:
    """The environment-variable section of `durable start --help`."""
    variables = settings_variables() if variables is None else variables
    if not variables:
        return "environment: see durable/config.py"
    width = min(max(len(name) for name, _ in variables), 28) + 2
    lines = ["environment (a bad value stops start-up with one line naming the variable):"]
    for name, text in variables:
        wrapped = textwrap.wrap(text, width=100 - width - 2) or [""]
        head = f"  {name.ljust(width)}"
        if len(name) > width - 2:
            lines.append(f"  {name}")
            head = " " * (width + 2)
        lines.append(head + wrapped[0])
        lines.extend(" " * (width + 2) + more for more in wrapped[1:])
    return "\n".join(lines)


def _engine_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    description: str,
    examples: str,
    env_note: str | None = None,
) -> None:
    epilog = "examples:\n" + examples + "\n\n" + (env_note or environment_help())
    sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="durable",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"durable {__version__}")
    add_global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    same = "environment: the same variables as `durable start` (see durable start --help)."
    _engine_parser(
        sub,
        "start",
        "API, dashboard, scheduler and workers (the default)",
        "Start the engine: the HTTP API and the dashboard on PORT, the cron scheduler and\n"
        "DURABLE_WORKERS worker loops. Without DATABASE_URL it starts (or reuses) an embedded\n"
        "PostgreSQL in DURABLE_PG_DIR. SIGINT or SIGTERM drains in-flight work, then exits 0.",
        "  durable start\n"
        "  PORT=8080 DURABLE_WORKERS=8 durable start\n"
        "  DATABASE_URL=postgresql://durable@db:5432/durable DURABLE_ADMIN_TOKEN=… durable start",
    )
    _engine_parser(
        sub,
        "worker",
        "worker loops only: no HTTP, no scheduler",
        "Run DURABLE_WORKERS worker loops against the database, with no HTTP and no scheduler.\n"
        "Any number may run beside `durable start`; without DATABASE_URL they attach to the\n"
        "embedded Postgres that `durable start` runs on this machine.",
        "  durable worker\n  DATABASE_URL=postgresql://durable@db:5432/durable DURABLE_WORKERS=16 durable worker",
        same,
    )
    _engine_parser(
        sub,
        "migrate",
        "apply migrations and exit",
        "Apply the database migrations (idempotent, under an advisory lock) and exit.",
        "  durable migrate\n  DATABASE_URL=postgresql://durable@db:5432/durable durable migrate",
        same,
    )
    _engine_parser(
        sub,
        "dev",
        "the full local stack with demo apps",
        "The full local stack: the engine, one extra worker and the demo apps (Python, TypeScript,\n"
        "PHP; a demo whose runtime is missing is skipped), each restarted on crash, logs prefixed.",
        "  durable dev",
        same,
    )
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "start"
    if command not in ENGINE_COMMANDS:
        return run_client(args)
    if args.url is not None or args.token is not None or args.json:
        print(
            "durable: --url, --token and --json apply to the client commands (apps, send, runs, "
            "functions), not to `durable start`; see durable --help",
            file=sys.stderr,
        )
        return 2
    return _engine(command)


def _engine(command: str) -> int:
    from durable.config import load
    from durable.errors import ConfigError

    try:
        settings = load()
    except ConfigError as exc:
        print(f"durable: {exc.message}", file=sys.stderr)
        return 2

    from durable import runtime

    if command == "migrate":
        from durable.store import embedded

        started = asyncio.run(runtime.prepare_database(settings, start_embedded=True))
        if started:
            embedded.stop(settings.pg_dir)
        print("durable: migrations applied")
        return 0
    if command == "dev":
        from durable import dev

        return dev.run(settings)
    return runtime.run(settings, serve_http=command == "start")


if __name__ == "__main__":
    sys.exit(main())
