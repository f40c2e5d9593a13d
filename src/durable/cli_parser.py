"""The argument parser of the CLI's client commands: `apps`, `send`, `runs` and `functions`, each
with its description, options and examples (the handlers are in `durable.cli_commands`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from durable.cli_client import DEFAULT_URL
from durable.cli_commands import (
    ENVIRONMENTS,
    MAX_LIMIT,
    RUN_ACTIVITIES,
    RUN_STATUSES,
    Handler,
    apps_create,
    apps_list,
    functions_list,
    runs_cancel,
    runs_list,
    runs_rerun,
    runs_show,
    send_event,
)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--url, --token and --json; on subcommands (``suppress``) they override only when given, so they
    work before the command (``durable --json runs list``) and after it (``durable runs list --json``)."""
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection and output (every client command)")
    group.add_argument(
        "--url",
        default=default,
        metavar="URL",
        help=f"the engine's base URL (default: $DURABLE_URL, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--token",
        default=default,
        metavar="TOKEN",
        help="the admin token, sent as Authorization: Bearer (default: $DURABLE_ADMIN_TOKEN); never printed",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default if suppress else False,
        help="print the API's JSON answer instead of a table (for scripts and jq)",
    )


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_LIMIT}, got {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_LIMIT}, got {value}")
    return value


def _app_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app", metavar="APP_ID", help="the workspace (default: $DURABLE_APP_ID; ids: durable apps list)"
    )


def _leaf(
    sub: Any, name: str, handler: Handler, help_text: str, description: str, examples: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=_formatter,
    )
    add_global_options(parser, suppress=True)
    parser.set_defaults(handler=handler, command_line=parser.prog)
    return parser


def _group(sub: Any, name: str, help_text: str, description: str, examples: str) -> Any:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="examples:\n" + examples + f"\n\n`durable {name} ACTION --help` describes each action.",
        formatter_class=_formatter,
    )
    actions = parser.add_subparsers(dest=f"{name}_action", metavar="ACTION", title="actions")
    actions.required = True
    return actions


def add_client_commands(sub: Any) -> None:
    """Add apps, send, runs and functions to the top-level subparsers ``sub``."""
    apps = _group(
        sub,
        "apps",
        "create and list workspaces",
        "Workspaces: an app name in one environment (dev, acc or prod), with its own events,\n"
        "functions, runs and signing key.",
        "  durable apps create shop --env dev --env-file .env\n  durable apps list",
    )
    create = _leaf(
        apps,
        "create",
        apps_create,
        "create a workspace, or find the existing one (idempotent)",
        "Create the workspace NAME in an environment, or find it when it exists: the same NAME and\n"
        "environment always give the same workspace. The answer holds the workspace's signing key,\n"
        "which this command never prints: --env-file writes it, with the app id, to a file only you\n"
        "can read. Needs the admin token when the engine has one; without one, loopback only.",
        "  durable apps create shop --env dev\n"
        "  durable apps create shop --env prod --env-file .env.prod\n"
        "  set -a; . ./.env.prod; set +a      # then: durable send order.paid --data '{\"id\": 1}'\n"
        "  durable apps create shop --env dev --json | jq -r .id",
    )
    create.add_argument("name", metavar="NAME", help="the app's name, e.g. billing or shop-api")
    create.add_argument(
        "--env",
        choices=ENVIRONMENTS,
        dest="environment",
        help="the environment (default: the engine's DURABLE_ENV, itself dev by default)",
    )
    create.add_argument(
        "--env-file",
        metavar="FILE",
        type=Path,
        help="write DURABLE_APP_ID and DURABLE_SIGNING_KEY to FILE (mode 0600; other lines are kept)",
    )
    _leaf(
        apps,
        "list",
        apps_list,
        "list workspaces",
        "Every workspace with its function count, signature mode and what it runs now.",
        "  durable apps list\n  durable apps list --json | jq -r '.items[].id'",
    )

    send = _leaf(
        sub,
        "send",
        send_event,
        "send an event into a workspace (signed, like an app)",
        "Send the event NAME with --data into a workspace, signed with signatures v2 with the\n"
        "workspace's signing key, exactly as an app's SDK does (POST /e). The signing key comes from\n"
        "$DURABLE_SIGNING_KEY (prefer it: a --signing-key flag is visible in the process list).",
        "  export DURABLE_APP_ID=app_01jxq6zt3b9m2k4r7v5w8n0c1d DURABLE_SIGNING_KEY=…     # see: durable apps create --env-file\n"
        '  durable send user.created --data \'{"userId": "u1"}\'\n'
        "  durable send order.paid --data @order.json --id order-1042   # the same id twice: sent once\n"
        "  echo '{\"n\": 1}' | durable send demo.tick --data -\n"
        "  durable send user.created --idempotency-key u1 --json",
    )
    send.add_argument("event_name", metavar="NAME", help="the event's name, e.g. user.created")
    send.add_argument(
        "--data",
        default="{}",
        metavar="JSON",
        help="the event's data: a JSON object, @FILE to read it from a file, or - for stdin (default: {})",
    )
    send.add_argument(
        "--id",
        dest="event_id",
        metavar="ID",
        help="the event's id: an id already seen in the workspace in the last 24 h is accepted and ignored",
    )
    send.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="at most one run per KEY per triggered function per 24 h",
    )
    send.add_argument(
        "--app-id", "--app", dest="app_id", metavar="APP_ID", help="the workspace (default: $DURABLE_APP_ID)"
    )
    send.add_argument(
        "--signing-key", metavar="KEY", help="the workspace's signing key (default: $DURABLE_SIGNING_KEY)"
    )

    runs = _group(
        sub,
        "runs",
        "list, show, cancel and rerun runs",
        "Runs: one execution of a function for one event (or one batch).",
        "  durable runs list --app app_01jxq6zt3b9m2k4r7v5w8n0c1d --status failed\n"
        "  durable runs show 01jxq7c2m4t8v6r0s9p3k5n1ab\n"
        "  durable runs cancel 01jxq7c2m4t8v6r0s9p3k5n1ab\n"
        "  durable runs rerun 01jxq7c2m4t8v6r0s9p3k5n1ab --from-step charge-card",
    )
    listing = _leaf(
        runs,
        "list",
        runs_list,
        "list a workspace's runs, newest first",
        "A workspace's runs, newest first, with their status, duration and output (or error).\n"
        "When more runs match, the last line (on stderr) gives the --cursor of the next page.",
        "  durable runs list --app app_01jxq6zt3b9m2k4r7v5w8n0c1d\n"
        "  durable runs list --status failed --function send-welcome --limit 20\n"
        "  durable runs list --status active --activity sleeping --json | jq -r '.items[].id'",
    )
    _app_option(listing)
    listing.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    listing.add_argument("--activity", choices=RUN_ACTIVITIES, help="only active runs doing this")
    listing.add_argument("--function", metavar="FUNCTION_ID", help="only runs of this function")
    listing.add_argument(
        "--limit",
        type=_limit,
        default=50,
        metavar="N",
        help=f"at most N runs, 1 to {MAX_LIMIT} (default: 50)",
    )
    listing.add_argument("--cursor", metavar="CURSOR", help="the page after this cursor (from the last page)")
    show = _leaf(
        runs,
        "show",
        runs_show,
        "one run with its steps in execution order",
        "One run: its status, event, output or error, and each step with its attempts, its durable\n"
        "time (queue, backoff, sleep, wait) and its time in the app.",
        "  durable runs show 01jxq7c2m4t8v6r0s9p3k5n1ab\n  durable runs show 01jxq7c2m4t8v6r0s9p3k5n1ab --json | jq '.steps[] | {id, output}'",
    )
    show.add_argument("run_id", metavar="RUN_ID")
    cancel = _leaf(
        runs,
        "cancel",
        runs_cancel,
        "cancel an active run",
        "Cancel an active run: it stops where it is (a step in flight may finish, its answer is\n"
        "ignored). A run that has ended cannot be cancelled (exit 1).",
        "  durable runs cancel 01jxq7c2m4t8v6r0s9p3k5n1ab",
    )
    cancel.add_argument("run_id", metavar="RUN_ID")
    rerun = _leaf(
        runs,
        "rerun",
        runs_rerun,
        "start a new run of the same function and event",
        "Start a new run of a run's function with the same event; the original is left as it was.\n"
        "With --from-step, the steps before STEP keep their stored results and are not run again.",
        "  durable runs rerun 01jxq7c2m4t8v6r0s9p3k5n1ab\n  durable runs rerun 01jxq7c2m4t8v6r0s9p3k5n1ab --from-step charge-card",
    )
    rerun.add_argument("run_id", metavar="RUN_ID")
    rerun.add_argument("--from-step", metavar="STEP", help="replay the steps before STEP from their results")

    functions = _group(
        sub,
        "functions",
        "list a workspace's functions",
        "Functions: handler, trigger and options, as the app synced them.",
        "  durable functions list app_01jxq6zt3b9m2k4r7v5w8n0c1d",
    )
    fn_list = _leaf(
        functions,
        "list",
        functions_list,
        "list a workspace's functions",
        "A workspace's functions with their trigger, options and whether they are paused.",
        "  durable functions list app_01jxq6zt3b9m2k4r7v5w8n0c1d\n  DURABLE_APP_ID=app_01jxq6zt3b9m2k4r7v5w8n0c1d durable functions list --json",
    )
    fn_list.add_argument(
        "app_id", nargs="?", metavar="APP_ID", help="the workspace (default: --app, else $DURABLE_APP_ID)"
    )
    _app_option(fn_list)
