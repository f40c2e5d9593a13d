"""The CLI without an engine: argument parsing, exit codes, tables, the env list of `start --help`,
and the HTTP client against a tiny stdlib server (what it sends, how it maps each answer)."""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from durable import cli
from durable.cli_client import Client, Refused, Unreachable, check_url
from durable.cli_commands import UsageError, read_data, write_env_file
from durable.cli_tables import cell, duration_ms, fields, options, table, timestamp, trigger
from durable.core.signing import V2_HEADER, verify_v2
from tests.harness import free_port

CONFIG = Path(cli.__file__).parent / "config.py"

# --- parsing ----------------------------------------------------------------------------------------


def parse(*argv: str) -> Any:
    return cli.build_parser().parse_args(list(argv))


def test_global_options_work_before_and_after_the_command() -> None:
    before = parse("--url", "http://a:1", "--json", "runs", "list")
    after = parse("runs", "list", "--url", "http://a:1", "--json")
    for args in (before, after):
        assert (args.url, args.json, args.command, args.runs_action) == ("http://a:1", True, "runs", "list")
    plain = parse("runs", "list")
    assert (plain.url, plain.token, plain.json) == (None, None, False)


def test_each_client_command_parses_its_options() -> None:
    args = parse("runs", "list", "--status", "failed", "--function", "f", "--limit", "7", "--app", "app_x")
    assert (args.status, args.function, args.limit, args.app) == ("failed", "f", 7, "app_x")
    args = parse("send", "user.created", "--data", '{"a": 1}', "--id", "e1", "--idempotency-key", "k")
    assert (args.event_name, args.data, args.event_id, args.idempotency_key) == (
        "user.created",
        '{"a": 1}',
        "e1",
        "k",
    )
    assert parse("send", "x", "--app", "app_y").app_id == "app_y"  # --app is --app-id's alias
    assert parse("runs", "rerun", "r1", "--from-step", "b").from_step == "b"
    assert parse("functions", "list", "app_z").app_id == "app_z"
    assert parse("apps", "create", "shop", "--env", "prod").environment == "prod"
    assert parse().command is None  # `durable` alone starts the engine


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "list", "--limit", "0"], "--limit: expected an integer from 1 to 500, got 0"),
        (["runs", "list", "--limit", "many"], "--limit: expected an integer from 1 to 500, got 'many'"),
        (["runs", "list", "--status", "done"], "--status: invalid choice: 'done'"),
        (["apps", "create", "shop", "--env", "staging"], "--env: invalid choice: 'staging'"),
        (["runs", "list", "--bogus"], "unrecognized arguments: --bogus"),
        (["runs"], "the following arguments are required: ACTION"),
        (["send"], "the following arguments are required: NAME"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["runs", "list"],
            {},
            "`durable runs list` needs a workspace: pass --app APP_ID or set DURABLE_APP_ID",
        ),
        (["functions", "list"], {}, "`durable functions list` needs a workspace"),
        (["send", "x"], {}, "send needs the workspace's id: set DURABLE_APP_ID"),
        (["send", "x"], {"DURABLE_APP_ID": "app_1"}, "send needs the workspace's signing key"),
        (["runs", "list", "--app", "a", "--url", "ftp://h"], {}, "'ftp://h' is not an engine URL"),
        (["runs", "list", "--app", "a"], {"DURABLE_URL": "localhost:3030"}, "is not an engine URL"),
        (
            ["send", "x", "--data", "{nope"],
            {"DURABLE_APP_ID": "a", "DURABLE_SIGNING_KEY": "k"},
            "--data is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        (
            ["send", "x", "--data", "[1]"],
            {"DURABLE_APP_ID": "a", "DURABLE_SIGNING_KEY": "k"},
            "must be a JSON object",
        ),
    ],
)
def test_a_missing_setting_exits_2_before_any_call(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from durable.cli_commands import run

    args = cli.build_parser().parse_args(argv)
    # Port 9 (discard) is never an engine: a call would end in exit 3, not 2.
    env = {"DURABLE_URL": "http://127.0.0.1:9", **env}
    assert run(args, env=env, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("durable: ") and message in err
    assert err.count("\n") == 1


def test_engine_options_are_refused_for_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--json", "start"]) == 2
    assert "apply to the client commands" in capsys.readouterr().err


def test_every_command_has_a_description_and_examples() -> None:
    parser = cli.build_parser()
    pending = [parser]
    seen = []
    while pending:
        current = pending.pop()
        for action in current._actions:
            if action.choices and isinstance(action.choices, dict):
                for name, child in action.choices.items():
                    seen.append(child.prog)
                    assert child.description, f"{child.prog} has no description"
                    assert child.epilog and "examples:\n" in child.epilog, name
                    assert child.prog in child.epilog, f"{child.prog}: no example runs it"
                    pending.append(child)
    assert len(seen) >= 15  # start worker migrate dev apps(2) send runs(4) functions(1) + groups


# --- start --help: the environment variables ----------------------------------------------------------


def test_start_help_lists_every_variable_config_reads(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["start", "--help"])
    text = capsys.readouterr().out
    read = set(re.findall(r'env(?:\.get)?\(\s*"([A-Z][A-Z0-9_]+)"', CONFIG.read_text(encoding="utf-8")))
    read |= set(
        re.findall(r'_(?:int|flag|hosts)\(env, "([A-Z][A-Z0-9_]+)"', CONFIG.read_text(encoding="utf-8"))
    )
    assert {"PORT", "DATABASE_URL", "DURABLE_ADMIN_TOKEN", "DURABLE_WORKERS"} <= read
    missing = sorted(name for name in read if not re.search(rf"^  {name}\b", text, re.MULTILINE))
    assert missing == []
    assert "Defaults to 3030" in text


def test_settings_variables_reads_field_docstrings() -> None:
    source = (
        "class Settings:\n"
        "    port: int = 1\n"
        '    """PORT: the port. Defaults to 1."""\n'
        "    other: int = 2\n"
        '    """not a variable: skipped"""\n'
        "    bare: int = 3\n"
    )
    assert cli.settings_variables(source) == [("PORT", "the port. Defaults to 1.")]
    assert cli.environment_help([]) == "environment: see durable/config.py"


# --- tables -------------------------------------------------------------------------------------------


def test_table_aligns_columns_and_ends_no_line_in_spaces() -> None:
    text = table(["id", "name", "url"], [["a", "shop", None], ["abcdef", "b", "http://x"]])
    assert text.splitlines() == [
        "ID      NAME  URL",
        "a       shop  -",
        "abcdef  b     http://x",
    ]
    assert table(["a", "b"], [["x", ""]]).splitlines()[1] == "x  -"


def test_table_refuses_a_row_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells, expected 2"):
        table(["a", "b"], [["x", "y"], ["z"]])


def test_cells_are_one_line_and_bounded() -> None:
    assert cell("line1\nline2\t\x1b[31mred") == "line1 line2 [31mred"
    assert cell("x" * 100) == "x" * 59 + "…"
    assert len(cell("y" * 100, 10)) == 10
    assert cell({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert cell(True) == "yes" and cell(0) == "0" and cell(None) == "-" and cell("") == "-"
    assert cell("é✓") == "é✓"


def test_fields_align_labels() -> None:
    assert fields([("id", "a"), ("environment", "dev")]).splitlines() == [
        "id:          a",
        "environment: dev",
    ]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (850, "850ms"),
        (3060, "3.1s"),
        (125_000, "2m05s"),
        (4 * 3600_000 + 600_000, "4h10m"),
        (50 * 3600_000, "2d02h"),
        (None, "-"),
        (True, "-"),
    ],
)
def test_duration_ms(ms: object, text: str) -> None:
    assert duration_ms(ms) == text


def test_timestamp_trigger_and_options() -> None:
    assert timestamp("2026-07-05T09:00:00.123Z") == "2026-07-05 09:00:00"
    assert timestamp(None) == "-"
    assert trigger({"event": "order.paid"}) == "event order.paid"
    assert trigger({"cron": "0 3 * * *"}) == "cron 0 3 * * *"
    assert trigger(None) == "-"
    fn = {"id": "f", "name": "f", "trigger": {}, "paused": None, "concurrency": {"limit": 2}, "retries": 3}
    assert options(fn) == 'concurrency={"limit": 2}, retries=3'


# --- --data and --env-file ----------------------------------------------------------------------------


def test_read_data_inline_file_and_stdin(tmp_path: Path) -> None:
    assert read_data('{"a": 1}') == {"a": 1}
    path = tmp_path / "d.json"
    path.write_text('{"b": [2]}', encoding="utf-8")
    assert read_data(f"@{path}") == {"b": [2]}
    assert read_data("-", io.StringIO('{"c": null}')) == {"c": None}
    with pytest.raises(UsageError, match=r"--data @.*missing\.json: cannot read it \(No such file"):
        read_data(f"@{tmp_path / 'missing.json'}")
    with pytest.raises(UsageError, match=r'--data must be a JSON object, like \{"userId": "u1"\}; got "s"'):
        read_data('"s"')


def test_env_file_is_private_and_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("OTHER=1\nDURABLE_APP_ID=old\n", encoding="utf-8")
    os.chmod(path, 0o644)
    write_env_file(path, {"DURABLE_APP_ID": "app_1", "DURABLE_SIGNING_KEY": "dur_sk_x"})
    assert path.read_text(encoding="utf-8") == "OTHER=1\nDURABLE_APP_ID=app_1\nDURABLE_SIGNING_KEY=dur_sk_x\n"
    assert path.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "new.env"
    write_env_file(fresh, {"A": "b"})
    assert fresh.stat().st_mode & 0o777 == 0o600


# --- the HTTP client against a stdlib server ----------------------------------------------------------


class FakeEngine:
    """Answers each request with `answers[path]` = (status, body, headers) and records what came."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, payload, headers = fake.answers.get(
                    self.path.split("?")[0], (404, b'{"error": "no route", "code": "not_found"}', {})
                )
                if payload == b"SLOW":
                    time.sleep(2)
                    payload = b"{}"
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        from durable.cli_commands import run

        out = io.StringIO()
        code = run(cli.build_parser().parse_args(argv), env={"DURABLE_URL": self.url, **(env or {})}, out=out)
        return code, out.getvalue()


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    fake = FakeEngine()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(5)


def test_send_signs_v2_as_the_app_and_sends_the_event(engine: FakeEngine) -> None:
    engine.answers["/e"] = (200, b'{"ids": ["e1"]}', {})
    key = "dur_sk_" + "ab" * 16
    env = {"DURABLE_APP_ID": "app_1", "DURABLE_SIGNING_KEY": key, "DURABLE_ADMIN_TOKEN": "admintoken"}
    code, out = engine.run(
        ["send", "user.created", "--data", '{"n": 1}', "--id", "x", "--idempotency-key", "k"], env
    )
    assert code == 0
    assert out.splitlines() == ["sent user.created: event e1", "runs: durable runs list --app app_1"]
    [request] = engine.requests
    assert json.loads(request["body"]) == {
        "name": "user.created",
        "data": {"n": 1},
        "id": "x",
        "idempotencyKey": "k",
    }
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-durable-app"] == "app_1"
    assert "authorization" not in headers  # the signed route never gets the admin token
    now = time.time_ns() // 1_000_000
    assert verify_v2(headers[V2_HEADER], request["body"], [key], "app", now, None).ok
    assert not verify_v2(headers[V2_HEADER], request["body"], ["another"], "app", now, None).ok
    assert key not in out


def test_admin_calls_send_the_token_as_bearer_and_never_print_it(engine: FakeEngine) -> None:
    engine.answers["/api/apps"] = (401, b'{"error": "admin token required", "code": "unauthorized"}', {})
    code, out = engine.run(["apps", "list", "--token", "s3cret-token"])
    assert code == 1 and out == ""
    [request] = engine.requests
    assert {k.lower(): v for k, v in request["headers"].items()}["authorization"] == "Bearer s3cret-token"


def test_a_refusal_exits_1_with_the_api_message(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.answers["/api/runs/r1/cancel"] = (
        409,
        b'{"error": "run \'r1\' is completed; only an active run can be cancelled", "code": "conflict"}',
        {},
    )
    assert engine.run(["runs", "cancel", "r1"]) == (1, "")
    assert capsys.readouterr().err == (
        "durable: the engine refused (HTTP 409): run 'r1' is completed; only an active run can be cancelled\n"
    )


def test_a_401_hints_at_the_token_without_showing_it(
    engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.answers["/api/apps"] = (401, b'{"error": "sign in", "code": "unauthorized"}', {})
    assert engine.run(["apps", "list"], {"DURABLE_ADMIN_TOKEN": "wrong-token-1"})[0] == 1
    err = capsys.readouterr().err
    assert "--token or DURABLE_ADMIN_TOKEN" in err and "wrong-token-1" not in err


def test_redirects_and_non_json_answers_are_refusals(engine: FakeEngine) -> None:
    client = Client(engine.url, "tok-12345678")
    engine.answers["/api/apps"] = (302, b"", {"location": "http://elsewhere.example/steal"})
    with pytest.raises(Refused, match=r"redirect \(HTTP 302 to http://elsewhere.example/steal\)"):
        client.get("/api/apps")
    assert len(engine.requests) == 1  # not followed
    engine.answers["/api/apps"] = (200, b"<html>", {})
    with pytest.raises(Refused, match="is not JSON .HTTP 200.: is --url a Durable engine"):
        client.get("/api/apps")
    engine.answers["/api/apps"] = (502, b"Bad gateway", {})
    with pytest.raises(Refused, match="HTTP 502 without a JSON error"):
        client.get("/api/apps")


def test_query_and_path_segments_are_escaped(engine: FakeEngine) -> None:
    engine.answers["/api/apps/a%2Fb/runs"] = (200, b'{"items": [], "nextCursor": null}', {})
    code, out = engine.run(["runs", "list", "--app", "a/b", "--status", "failed", "--limit", "5"])
    assert (code, out) == (0, "no runs in a/b match\n")
    assert engine.requests[0]["path"] == "/api/apps/a%2Fb/runs?status=failed&limit=5"


def test_runs_list_renders_a_table_and_json(engine: FakeEngine) -> None:
    items = [
        {
            "id": "r2",
            "functionId": "greet",
            "status": "completed",
            "activity": None,
            "output": "hi\nthere",
            "error": None,
            "createdAt": "2026-07-05T09:00:00.000Z",
            "startedAt": "2026-07-05T09:00:00.000Z",
            "endedAt": "2026-07-05T09:00:03.060Z",
        },
        {
            "id": "r1",
            "functionId": "nap",
            "status": "active",
            "activity": "sleeping",
            "output": None,
            "error": None,
            "createdAt": "2026-07-05T08:59:00Z",
            "startedAt": None,
            "endedAt": None,
        },
    ]
    body = json.dumps({"items": items, "nextCursor": None}).encode()
    engine.answers["/api/apps/app_1/runs"] = (200, body, {})
    code, out = engine.run(["runs", "list", "--app", "app_1"])
    assert code == 0
    assert out.splitlines() == [
        "RUN  FUNCTION  STATUS             CREATED              TOOK  OUTPUT",
        "r2   greet     completed          2026-07-05 09:00:00  3.1s  hi there",
        "r1   nap       active (sleeping)  2026-07-05 08:59:00  -     -",
    ]
    code, out = engine.run(["runs", "list", "--json"], {"DURABLE_APP_ID": "app_1"})
    assert code == 0 and json.loads(out) == {"items": items, "nextCursor": None}


def test_apps_create_shows_the_signing_key_only_to_scripts_and_env_files(
    engine: FakeEngine, tmp_path: Path
) -> None:
    key = "dur_sk_" + "cd" * 16
    answer = {"id": "app_1", "name": "shop", "environment": "dev", "signingKey": key}
    engine.answers["/api/apps"] = (200, json.dumps(answer).encode(), {})
    code, out = engine.run(["apps", "create", "shop", "--env", "dev"])
    assert code == 0 and key not in out
    assert "signing key: not shown (--env-file FILE writes it, --json prints it)" in out
    code, out = engine.run(["apps", "create", "shop", "--json", "--env-file", str(tmp_path / ".env")])
    assert code == 0 and json.loads(out) == answer  # the API's answer, for `jq -r .signingKey`
    assert (tmp_path / ".env").read_text(
        encoding="utf-8"
    ) == f"DURABLE_APP_ID=app_1\nDURABLE_SIGNING_KEY={key}\n"
    assert json.loads(engine.requests[0]["body"]) == {"name": "shop", "environment": "dev"}
    assert json.loads(engine.requests[1]["body"]) == {"name": "shop"}  # the engine's DURABLE_ENV decides


def test_unreachable_engine_exits_3_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["apps", "list", "--url", url]) == 3
    err = capsys.readouterr().err
    assert (
        err
        == f"durable: cannot reach the engine at {url}: connection refused (is `durable start` running? set --url or DURABLE_URL)\n"
    )


def test_a_silent_engine_times_out_as_unreachable(engine: FakeEngine) -> None:
    engine.answers["/api/apps"] = (200, b"SLOW", {})
    with pytest.raises(Unreachable, match=r"no answer within 0.3 s"):
        Client(engine.url, timeout=0.3).get("/api/apps")


def test_check_url() -> None:
    assert check_url("http://127.0.0.1:3030") is None
    assert check_url("https://durable.example.com/base") is None
    assert "expected http://host:port" in (check_url("127.0.0.1:3030") or "")
    assert "query or a fragment" in (check_url("http://h/?x=1") or "")


def test_calls_time_out_after_30_seconds_by_default() -> None:
    assert Client("http://127.0.0.1:3030").timeout == 30


def test_docs_cli_md_documents_every_command() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = cli.build_parser()
    pending, leaves = [parser], []
    while pending:
        current = pending.pop()
        children = [a.choices for a in current._actions if isinstance(a.choices, dict)]
        if not children and current is not parser:
            leaves.append(current.prog)
        for choices in children:
            pending.extend(choices.values())
    assert len(leaves) == 12
    missing = [prog for prog in leaves if f"`{prog}" not in doc and f"\n{prog}" not in doc]
    assert missing == []
    for flag in ("--url", "--token", "--json", "--env-file", "--from-step", "--idempotency-key", "--cursor"):
        assert f"`{flag}" in doc, flag
