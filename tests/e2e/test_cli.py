"""`durable` client commands as a shell user runs them: `.venv/bin/durable …` subprocesses against a
real engine (with an admin token, so every admin call must carry it) and a real SDK app."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import durable_sdk

from tests.e2e.procs import ROOT, Proc, child_env, engine_env
from tests.harness import AppServer, free_port

DURABLE = Path(sys.executable).parent / "durable"  # the console script pip installed: .venv/bin/durable
TOKEN = "cli-e2e-admin-token"


def durable(*argv: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DURABLE), *argv], env=env, input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def ok(*argv: str, env: dict[str, str]) -> str:
    result = durable(*argv, env=env)
    assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result.stdout


def as_json(*argv: str, env: dict[str, str]) -> Any:
    return json.loads(ok(*argv, "--json", env=env))


def eventually(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@durable_sdk.function(id="greet", trigger={"event": "demo.greet"})
def greet(event, step):  # type: ignore[no-untyped-def]
    return step.run("greet", lambda: f"hi {event['data']['name']}")


@durable_sdk.function(id="nap", trigger={"event": "demo.nap"}, concurrency={"limit": 2})
def nap(event, step):  # type: ignore[no-untyped-def]
    step.sleep("nap", "1h")
    return "rested"


def test_the_cli_drives_a_real_engine(dsn: str, tmp_path: Path) -> None:
    assert DURABLE.exists(), f"{DURABLE} is missing: is the engine installed in this venv?"
    engine = Proc("start", engine_env(dsn, DURABLE_ADMIN_TOKEN=TOKEN), tmp_path, "engine")
    outputs: list[str] = []
    key = ""

    def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        result = durable(*argv, env=env)
        outputs.append(result.stdout + result.stderr)
        return result

    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        cli = child_env(DURABLE_URL=base, DURABLE_ADMIN_TOKEN=TOKEN)

        # 1: the API refuses a call without the token, and the message says so.
        refused = run("apps", "list", env=child_env(DURABLE_URL=base))
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith("durable: the engine refused (HTTP 401): ")
        assert "--token or DURABLE_ADMIN_TOKEN" in refused.stderr

        # apps create: the key goes to the env file (or to a script asking for --json), not to the table.
        env_file = tmp_path / ".env"
        created = run("apps", "create", "shop", "--env", "dev", "--env-file", str(env_file), env=cli)
        assert created.returncode == 0, created.stderr
        values = dict(line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines())
        app_id, key = values["DURABLE_APP_ID"], values["DURABLE_SIGNING_KEY"]
        assert app_id.startswith("app_") and key.startswith("dur_sk_")
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert f"id:          {app_id}" in created.stdout and "environment: dev" in created.stdout
        again = as_json("apps", "create", "shop", "--env", "dev", env=cli)
        assert again == {"id": app_id, "name": "shop", "environment": "dev", "signingKey": key}  # idempotent
        assert key not in created.stdout + created.stderr  # the table never shows it

        # apps list: a table, and the API's JSON.
        listed = run("apps", "list", env=cli)
        assert listed.returncode == 0
        header, row = listed.stdout.splitlines()[:2]
        assert header.split()[:3] == ["ID", "NAME", "ENV"] and row.split()[:3] == [app_id, "shop", "dev"]
        assert [a["id"] for a in as_json("apps", "list", env=cli)["items"]] == [app_id]

        with AppServer([greet, nap], key) as app:
            durable_sdk.Client(base, app_id=app_id, signing_key=key, app_url=app.url).sync([greet, nap])
            shop = {**cli, "DURABLE_APP_ID": app_id, "DURABLE_SIGNING_KEY": key}

            # functions list: APP_ID as the argument, or from DURABLE_APP_ID.
            functions = run("functions", "list", app_id, env=cli)
            assert functions.returncode == 0, functions.stderr
            lines = functions.stdout.splitlines()
            assert lines[0].split() == ["FUNCTION", "NAME", "TRIGGER", "OPTIONS", "PAUSED"]
            assert any(line.split()[:4] == ["nap", "nap", "event", "demo.nap"] for line in lines[1:])
            assert 'concurrency={"limit": 2}' in functions.stdout
            ids = sorted(f["id"] for f in as_json("functions", "list", env=shop)["items"])
            assert ids == ["greet", "nap"]

            # send (signed v2 with the workspace's key), then the run appears in runs list.
            sent = run("send", "demo.greet", "--data", '{"name": "cli"}', env=shop)
            assert sent.returncode == 0, sent.stderr
            assert sent.stdout.startswith("sent demo.greet: event ")

            def completed() -> list[dict[str, Any]]:
                page = as_json("runs", "list", "--status", "completed", env=shop)
                return [r for r in page["items"] if r["functionId"] == "greet"]

            [greet_run] = eventually(completed, "the greet run to complete")
            table = ok("runs", "list", "--app", app_id, env=cli).splitlines()
            assert table[0].split() == ["RUN", "FUNCTION", "STATUS", "CREATED", "TOOK", "OUTPUT"]
            assert any(line.split()[:3] == [greet_run["id"], "greet", "completed"] for line in table)

            # runs show: the run and its steps.
            shown = ok("runs", "show", greet_run["id"], env=cli)
            assert f"run:      {greet_run['id']}" in shown and "output:   hi cli" in shown
            step_lines = shown.split("\n\n", 1)[1].splitlines()
            assert step_lines[0].split() == ["STEP", "TYPE", "STATUS", "ATTEMPTS", "DURABLE", "APP", "OUTPUT"]
            assert step_lines[1].split()[:4] == ["greet", "run", "completed", "1"]
            detail = as_json("runs", "show", greet_run["id"], env=cli)
            assert [(s["id"], s["output"]) for s in detail["steps"]] == [("greet", "hi cli")]

            # runs cancel: a sleeping run is cancelled; a second cancel is refused (exit 1).
            event = as_json("send", "demo.nap", "--id", "nap-1", env=shop)
            assert event["ids"] == ["nap-1"]

            def sleeping() -> list[dict[str, Any]]:
                page = as_json("runs", "list", "--function", "nap", "--activity", "sleeping", env=shop)
                return list(page["items"])

            [nap_run] = eventually(sleeping, "the nap run to sleep")
            cancelled = run("runs", "cancel", nap_run["id"], env=cli)
            assert (cancelled.returncode, cancelled.stdout) == (0, f"cancelled {nap_run['id']} (nap)\n")
            assert as_json("runs", "show", nap_run["id"], env=cli)["status"] == "cancelled"
            twice = run("runs", "cancel", nap_run["id"], env=cli)
            assert twice.returncode == 1
            assert "(HTTP 409)" in twice.stderr and "only an active run can be cancelled" in twice.stderr

            # runs rerun, from a step: a new run of the same event, the original left as it was.
            rerun = run("runs", "rerun", greet_run["id"], "--from-step", "greet", env=cli)
            assert rerun.returncode == 0, rerun.stderr
            new_id = rerun.stdout.strip().rsplit(" ", 1)[1]
            assert new_id != greet_run["id"]
            again_done = eventually(
                lambda: (r := as_json("runs", "show", new_id, env=cli))["status"] == "completed" and r,
                "the rerun to complete",
            )
            assert again_done["rerunOf"] == greet_run["id"] and again_done["output"] == "hi cli"
            plain = as_json("runs", "rerun", greet_run["id"], env=cli)
            assert set(plain) == {"runId"} and plain["runId"] not in (new_id, greet_run["id"])

            # 1: the API's own message for a missing run; 2: usage errors, before any call.
            missing = run("runs", "show", "nosuchrun", env=cli)
            assert (missing.returncode, missing.stdout) == (1, "")
            assert missing.stderr == "durable: the engine refused (HTTP 404): no run with id 'nosuchrun'\n"
            bad_step = run("runs", "rerun", greet_run["id"], "--from-step", "nope", env=cli)
            assert bad_step.returncode == 1 and "has no step 'nope'" in bad_step.stderr
        bad_flag = run("runs", "list", "--limit", "0", env=shop)
        assert (
            bad_flag.returncode == 2
            and "--limit: expected an integer from 1 to 500, got 0" in bad_flag.stderr
        )
        unknown = run("runs", "lst", env=shop)
        assert unknown.returncode == 2 and "invalid choice: 'lst'" in unknown.stderr
        no_key = run("send", "demo.greet", env=cli)
        assert no_key.returncode == 2 and "send needs the workspace's id" in no_key.stderr

        # A wrong signing key: the engine refuses it (401, exit 1), naming the signature.
        forged = run("send", "demo.greet", env={**shop, "DURABLE_SIGNING_KEY": "dur_sk_" + "0" * 32})
        assert forged.returncode == 1 and "x-durable-signature-v2" in forged.stderr

        # 3: nothing listens at the URL; the message names it.
        nowhere = f"http://127.0.0.1:{free_port()}"
        down = run("runs", "list", "--url", nowhere, env=shop)
        assert down.returncode == 3
        assert down.stderr.startswith(f"durable: cannot reach the engine at {nowhere}: connection refused")
    finally:
        engine.stop()
    leaked = [text for text in outputs if TOKEN in text or (bool(key) and key in text)]
    assert leaked == []
