"""`durable [start] | worker | migrate | dev`: argparse, no framework."""

from __future__ import annotations

import argparse
import asyncio
import sys

from durable import __version__
from durable.config import load
from durable.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="durable", description="Durable: durable execution on Postgres.")
    parser.add_argument("--version", action="version", version=f"durable {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("start", help="API, dashboard, scheduler and workers (the default)")
    sub.add_parser("worker", help="worker loops only: no HTTP, no scheduler")
    sub.add_parser("migrate", help="apply migrations and exit")
    sub.add_parser("dev", help="the full local stack with demo apps")
    args = parser.parse_args(argv)
    command = args.command or "start"
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
