"""The CLI's client commands: `apps`, `send`, `runs` and `functions`, each one call on the HTTP API.

They never touch Postgres and never read the engine's own settings: they need only where the engine
is (``--url``, ``DURABLE_URL``), the admin token when it has one (``--token``,
``DURABLE_ADMIN_TOKEN``), and for ``send`` the workspace's id and signing key. Exit codes: 0 done,
1 the API refused (its message is printed), 2 a usage or configuration error, 3 the engine is
unreachable. Neither the token nor a signing key is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from durable.cli_client import DEFAULT_URL, Client, Refused, Unreachable, check_url, quote
from durable.cli_tables import cell, duration_ms, fields, options, table, timestamp, trigger

ENVIRONMENTS = ("dev", "acc", "prod")
RUN_STATUSES = ("active", "completed", "failed", "cancelled")
RUN_ACTIVITIES = ("executing", "queued", "waiting", "sleeping", "scheduled")
MAX_LIMIT = 500

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

Handler = Callable[[argparse.Namespace, Client, TextIO], int]


class UsageError(Exception):
    """A missing or bad option the parser cannot see (an app id, a signing key, the --data JSON)."""


# --- running a command ------------------------------------------------------------------------------


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run the parsed client command; every failure is one line on stderr and an exit code."""
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    try:
        url = args.url or env.get("DURABLE_URL") or DEFAULT_URL
        problem = check_url(url)
        if problem:
            raise UsageError(f"{problem} (--url or DURABLE_URL)")
        client = Client(url, args.token or env.get("DURABLE_ADMIN_TOKEN") or None)
        args.env_values = env
        handler: Handler = args.handler
        return handler(args, client, out)
    except UsageError as exc:
        print(f"durable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Refused as exc:
        print(f"durable: the engine refused (HTTP {exc.status}): {exc.message}{_hint(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except Unreachable as exc:
        print(
            f"durable: cannot reach the engine at {exc.url}: {exc.reason} (is `durable start` running? "
            "set --url or DURABLE_URL)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE


def _hint(exc: Refused) -> str:
    if exc.status == 401 and exc.code == "unauthorized" and "signature" not in exc.message:
        return " (pass the admin token: --token or DURABLE_ADMIN_TOKEN)"
    return ""


def _emit_json(out: TextIO, value: object) -> int:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _app(args: argparse.Namespace, *names: str) -> str:
    for name in names:
        value = getattr(args, name, None)
        if value:
            return str(value)
    value = args.env_values.get("DURABLE_APP_ID")
    if not value:
        raise UsageError(
            f"`{args.command_line}` needs a workspace: pass --app APP_ID or set DURABLE_APP_ID "
            "(ids: durable apps list)"
        )
    return str(value)


def apps_create(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    payload: dict[str, Any] = {"name": args.name}
    if args.environment:
        payload["environment"] = args.environment
    answer = client.post("/api/apps", payload)
    key = answer.get("signingKey") if isinstance(answer, dict) else None
    written = None
    if args.env_file is not None and isinstance(key, str):
        write_env_file(args.env_file, {"DURABLE_APP_ID": str(answer["id"]), "DURABLE_SIGNING_KEY": key})
        written = args.env_file
    if args.json:
        # The API's answer as it is, key included: a script that provisions asked for it (`| jq -r
        # .signingKey`). A terminal never shows it: the table below points to --env-file.
        return _emit_json(out, answer)
    where = (
        f"written to {written} with DURABLE_APP_ID (mode 0600)"
        if written
        else "not shown (--env-file FILE writes it, --json prints it)"
    )
    out.write(
        fields(
            [
                ("id", answer.get("id")),
                ("name", answer.get("name")),
                ("environment", answer.get("environment")),
                ("signing key", where),
            ]
        )
        + "\n"
    )
    return EXIT_OK


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Set ``NAME=value`` lines in the env file at ``path`` (created 0600; its other lines kept)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        raise UsageError(f"--env-file {path}: cannot read it ({exc.strerror or exc})") from None
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    kept += [f"{name}={value}" for name, value in values.items()]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file now holds a secret too
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(kept) + "\n")
    except OSError as exc:
        raise UsageError(f"--env-file {path}: cannot write it ({exc.strerror or exc})") from None


def apps_list(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    answer = client.get("/api/apps")
    if args.json:
        return _emit_json(out, answer)
    items = answer.get("items", [])
    if not items:
        out.write("no workspaces yet: durable apps create NAME --env dev\n")
        return EXIT_OK
    rows = [
        [
            a.get("id"),
            a.get("name"),
            a.get("environment"),
            a.get("functionCount"),
            a.get("signatureMode"),
            a.get("executing"),
            a.get("queued"),
            a.get("url"),
        ]
        for a in items
    ]
    headers = ["id", "name", "env", "functions", "signatures", "executing", "queued", "url"]
    out.write(table(headers, rows) + "\n")
    return EXIT_OK


def read_data(text: str, stdin: TextIO | None = None) -> dict[str, Any]:
    """The --data option: inline JSON, ``@FILE`` or ``-`` (stdin); it must be a JSON object."""
    source = "--data"
    if text == "-":
        text, source = (stdin or sys.stdin).read(), "--data - (stdin)"
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--data @{path}: cannot read it ({exc.strerror or exc})") from None
        source = f"--data @{path}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f'{source} must be a JSON object, like {{"userId": "u1"}}; got {cell(json.dumps(value), 40)}'
        )
    return value


def send_event(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    app_id = args.app_id or args.env_values.get("DURABLE_APP_ID")
    key = args.signing_key or args.env_values.get("DURABLE_SIGNING_KEY")
    if not app_id:
        raise UsageError("send needs the workspace's id: set DURABLE_APP_ID or pass --app-id APP_ID")
    if not key:
        raise UsageError(
            "send needs the workspace's signing key: set DURABLE_SIGNING_KEY (or pass --signing-key); "
            "`durable apps create NAME --env-file .env` writes both"
        )
    if not args.event_name.strip():
        raise UsageError("send: NAME must be a non-empty event name, like user.created")
    event: dict[str, Any] = {"name": args.event_name, "data": read_data(args.data)}
    if args.event_id is not None:
        event["id"] = args.event_id
    if args.idempotency_key is not None:
        event["idempotencyKey"] = args.idempotency_key
    answer = client.send_events(app_id, key, event)
    if args.json:
        return _emit_json(out, answer)
    ids = answer.get("ids", []) if isinstance(answer, dict) else []
    out.write(f"sent {args.event_name}: event {', '.join(map(str, ids)) or '-'}\n")
    out.write(f"runs: durable runs list --app {app_id}\n")
    return EXIT_OK


def _status(run: Mapping[str, Any]) -> str:
    status = str(run.get("status") or "-")
    activity = run.get("activity")
    return f"{status} ({activity})" if status == "active" and activity else status


def _took(run: Mapping[str, Any]) -> str:
    start, end = run.get("startedAt") or run.get("createdAt"), run.get("endedAt")
    if not isinstance(start, str) or not isinstance(end, str):
        return "-"
    try:
        ms = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000
    except ValueError:
        return "-"
    return duration_ms(max(ms, 0))


def _result(run: Mapping[str, Any]) -> object:
    error = run.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return f"error: {error['message']}"
    preview = run.get("outputPreview")
    if run.get("output") is None and isinstance(preview, str) and preview:
        return preview + "…"  # the runs list cuts long outputs; `runs show` has the whole one
    return run.get("output")


def runs_list(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    app_id = _app(args, "app")
    query = {
        "status": args.status,
        "activity": args.activity,
        "functionId": args.function,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    answer = client.get(f"/api/apps/{quote(app_id)}/runs", query)
    if args.json:
        return _emit_json(out, answer)
    items = answer.get("items", [])
    if not items:
        filtered = any(query[k] for k in ("status", "activity", "functionId"))
        out.write(f"no runs in {app_id} match\n" if filtered else f"no runs in {app_id} yet\n")
        return EXIT_OK
    rows = [
        [r.get("id"), r.get("functionId"), _status(r), timestamp(r.get("createdAt")), _took(r), _result(r)]
        for r in items
    ]
    out.write(table(["run", "function", "status", "created", "took", "output"], rows) + "\n")
    if answer.get("nextCursor"):
        print(f"more runs: add --cursor {answer['nextCursor']}", file=sys.stderr)
    return EXIT_OK


def runs_show(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    view = client.get(f"/api/runs/{quote(args.run_id)}")
    if args.json:
        return _emit_json(out, view)
    event = view.get("event") if isinstance(view.get("event"), Mapping) else {}
    pairs: list[tuple[str, object]] = [
        ("run", view.get("id")),
        ("app", view.get("appId")),
        ("function", view.get("functionId")),
        ("status", _status(view)),
        ("event", f"{event.get('name', '-')} {view.get('eventId') or ''}".strip()),
        ("created", timestamp(view.get("createdAt"))),
        ("started", timestamp(view.get("startedAt"))),
        ("ended", timestamp(view.get("endedAt"))),
    ]
    if view.get("rerunOf"):
        pairs.append(("rerun of", view["rerunOf"]))
    if view.get("status") == "completed":
        pairs.append(("output", view.get("output")))
    error = view.get("error")
    if isinstance(error, Mapping):
        pairs.append(("error", error.get("message")))
    retry = view.get("retry")
    if isinstance(retry, Mapping):
        pairs.append(
            (
                "retry",
                f"attempt {retry.get('attempt')} of {retry.get('maxAttempts')} at {retry.get('nextAt')}",
            )
        )
    out.write(fields(pairs) + "\n")
    steps = view.get("steps") or []
    if steps:
        rows = [
            [
                s.get("id"),
                s.get("type"),
                s.get("status"),
                s.get("attempts"),
                duration_ms(s.get("queuedMs")),
                duration_ms(s.get("appMs")),
                _result(s),
            ]
            for s in steps
        ]
        out.write(
            "\n" + table(["step", "type", "status", "attempts", "durable", "app", "output"], rows) + "\n"
        )
    else:
        out.write("\nno steps yet\n")
    return EXIT_OK


def runs_cancel(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    answer = client.post(f"/api/runs/{quote(args.run_id)}/cancel", {})
    if args.json:
        return _emit_json(out, answer)
    out.write(f"cancelled {answer.get('id', args.run_id)} ({answer.get('functionId', '-')})\n")
    return EXIT_OK


def runs_rerun(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    payload = {} if args.from_step is None else {"fromStep": args.from_step}
    answer = client.post(f"/api/runs/{quote(args.run_id)}/rerun", payload)
    if args.json:
        return _emit_json(out, answer)
    start = f" from step {args.from_step}" if args.from_step else ""
    out.write(f"rerun of {args.run_id}{start} started: {answer.get('runId')}\n")
    return EXIT_OK


def functions_list(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    app_id = _app(args, "app_id", "app")
    answer = client.get(f"/api/apps/{quote(app_id)}/functions")
    if args.json:
        return _emit_json(out, answer)
    items = answer.get("items", [])
    if not items:
        out.write(f"no functions in {app_id}: they appear when the app syncs\n")
        return EXIT_OK
    rows = []
    for f in items:
        paused = f.get("paused")
        rows.append(
            [
                f.get("id"),
                f.get("name"),
                trigger(f.get("trigger")),
                options(f),
                paused.get("mode") if isinstance(paused, Mapping) else "no",
            ]
        )
    out.write(table(["function", "name", "trigger", "options", "paused"], rows) + "\n")
    return EXIT_OK
