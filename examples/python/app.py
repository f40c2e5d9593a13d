"""Durable example app: `onboarding` (run, sleep, run), `approval` (wait for an event, then run),
`nightly-report` (cron) and `sync-crm` (concurrency per tenant, debounced per contact).

    DURABLE_APP_ID=... DURABLE_SIGNING_KEY=... python examples/python/app.py

Environment: DURABLE_URL (default http://localhost:3030), DURABLE_APP_ID, DURABLE_SIGNING_KEY,
PORT (default 4000), HOST (default 127.0.0.1), DURABLE_APP_URL (default http://localhost:PORT/api/durable).
Without DURABLE_APP_ID and DURABLE_SIGNING_KEY the app provisions the workspace DURABLE_APP_NAME
(default "demo-python") in DURABLE_ENV (default "dev") itself, as `durable dev` expects; set
DURABLE_ADMIN_TOKEN when the engine requires it.
Serves with uvicorn (ASGI) when installed, otherwise with wsgiref (WSGI), and syncs once listening.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

try:
    import durable_sdk
except ImportError:  # not installed: use the SDK from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdks" / "python"))
    import durable_sdk


@durable_sdk.function(id="onboarding", trigger={"event": "user.created"})
async def onboarding(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    """Welcome a new user: load them, let things settle for two seconds, then send the email."""
    user_id = event["data"].get("userId", "u1")
    user = await step.run("load-user", lambda: {"id": user_id, "email": f"{user_id}@example.com"})
    await step.sleep("cooldown", "2s")
    sent = await step.run("send-email", lambda: {"to": user["email"], "template": "welcome"})
    return {"user": user["id"], "email": sent}


@durable_sdk.function(id="approval", trigger={"event": "order.placed"})
def approval(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    """Hold an order until an `approval.received` event for it arrives (or an hour passes). A plain `def`."""
    order_id = event["data"]["orderId"]
    decision = step.wait_for_event(
        "approve", event="approval.received", match={"orderId": order_id}, timeout="1h"
    )
    by = decision["data"].get("by") if decision else None
    return step.run("record", lambda: {"orderId": order_id, "approved": decision is not None, "by": by})


@durable_sdk.function(id="nightly-report", trigger={"cron": "*/30 * * * * *"})
async def nightly_report(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    """A scheduled job (every 30 s here, so the demo shows it): the run gets the `$cron` event."""
    return await step.run("report", lambda: {"scheduledAt": event["data"]["scheduledAt"], "rows": 42})


@durable_sdk.function(
    id="sync-crm",
    trigger={"event": "contact.changed"},
    concurrency={"limit": 2, "key": "tenantId"},
    debounce={"period": "2s", "key": "contactId"},
)
async def sync_crm(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    """Push a contact to the CRM once its edits settle: at most 2 syncs per tenant at once."""
    contact = event["data"].get("contactId", "c1")
    return await step.run("push", lambda: {"contactId": contact, "pushed": True})


FUNCTIONS = [onboarding, approval, nightly_report, sync_crm]


def provision(durable_url: str) -> tuple[str, str]:
    """Create (or fetch: the call is idempotent) this demo's workspace; returns (app id, signing key)."""
    body = json.dumps(
        {
            "name": os.environ.get("DURABLE_APP_NAME", "demo-python"),
            "environment": os.environ.get("DURABLE_ENV", "dev"),
        }
    ).encode()
    headers = {"content-type": "application/json"}
    if os.environ.get("DURABLE_ADMIN_TOKEN"):
        headers["authorization"] = f"Bearer {os.environ['DURABLE_ADMIN_TOKEN']}"
    request = urllib.request.Request(durable_url.rstrip("/") + "/api/apps", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        app = json.load(response)
    return app["id"], app["signingKey"]


def sync_when_listening(client: durable_sdk.Client, is_listening: Any, on_failure: Any) -> None:
    """Wait for the server to listen, then sync; retry while the engine is not up yet."""
    while not is_listening():
        time.sleep(0.05)
    for attempt in range(1, 31):
        try:
            client.sync(FUNCTIONS)
            print(f"synced {[f.id for f in FUNCTIONS]} -> {client.app_url}", flush=True)
            return
        except durable_sdk.DurableError as exc:
            print(f"sync attempt {attempt} failed: {exc}", file=sys.stderr, flush=True)
            time.sleep(1)
    on_failure()


def run_uvicorn(client: durable_sdk.Client, key: str, host: str, port: int) -> bool:
    """Serve the ASGI app with uvicorn; sync once it listens. Returns False if sync gave up."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(durable_sdk.serve(FUNCTIONS, signing_key=key), host=host, port=port)
    )
    failed = threading.Event()

    def give_up() -> None:
        failed.set()
        server.should_exit = True

    threading.Thread(
        target=sync_when_listening, args=(client, lambda: server.started, give_up), daemon=True
    ).start()
    server.run()
    return not failed.is_set()


def run_wsgiref(client: durable_sdk.Client, key: str, host: str, port: int) -> bool:
    """Serve the WSGI app with the standard library's wsgiref; sync once it listens."""
    from wsgiref.simple_server import make_server

    failed = threading.Event()
    with make_server(host, port, durable_sdk.serve_wsgi(FUNCTIONS, signing_key=key)) as server:

        def give_up() -> None:
            failed.set()
            server.shutdown()

        threading.Thread(
            target=sync_when_listening, args=(client, lambda: True, give_up), daemon=True
        ).start()
        print(f"serving on http://{host}:{port}/api/durable (wsgiref)", flush=True)
        server.serve_forever()
    return not failed.is_set()


def main() -> int:
    durable_url = os.environ.get("DURABLE_URL", "http://localhost:3030")
    port = int(os.environ.get("PORT", "4000"))
    host = os.environ.get("HOST", "127.0.0.1")
    app_url = os.environ.get("DURABLE_APP_URL", f"http://localhost:{port}/api/durable")
    app_id, key = os.environ.get("DURABLE_APP_ID"), os.environ.get("DURABLE_SIGNING_KEY")
    if not (app_id and key):
        app_id, key = provision(durable_url)
    client = durable_sdk.Client(base_url=durable_url, app_id=app_id, signing_key=key, app_url=app_url)
    run = run_uvicorn if importlib.util.find_spec("uvicorn") else run_wsgiref
    return 0 if run(client, key, host, port) else 1


if __name__ == "__main__":
    sys.exit(main())
