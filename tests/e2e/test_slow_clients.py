"""Slow clients cannot hold a real `durable start` open (issue 9, item 6).

400 connections against one engine, over real sockets: some trickle their headers a byte at a time, some
send whole headers and then trickle a body that never completes, some connect and send nothing. The
engine must close every one of them within DURABLE_REQUEST_TIMEOUT_MS (shortened here to 3 s) of its
opening, while /healthz and the API keep answering promptly; a request whose headers exceed 64 KiB gets
431 at once.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from pathlib import Path

import httpx

from durable.api.connections import MAX_HEAD_BYTES
from tests.e2e.procs import Proc, child_env, engine_env, refused_start

TIMEOUT_MS = 3000
SLACK_S = 3.0  # scheduling on a shared 2-core machine, and the trickle interval
CONNECTIONS = {"headers": 150, "body": 150, "silent": 100}
TRICKLE_EVERY_S = 0.25
HEALTHZ_BOUND_S = 0.5


class Slow:
    """One slow client: a non-blocking socket, what it has left to trickle, and when it was closed."""

    def __init__(self, port: int, kind: str, prefix: bytes) -> None:
        self.kind = kind
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.opened = time.monotonic()
        self.closed_at: float | None = None
        self.answer = b""
        if prefix:
            self.sock.send(prefix)

    def trickle(self, byte: bytes) -> None:
        try:
            self.sock.send(byte)
        except OSError:  # reset or broken pipe: the server closed it
            self.close()

    def readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.answer += data
        else:
            self.close()

    def close(self) -> None:
        """Note the moment the server closed it (the socket itself is closed by `finish`)."""
        if self.closed_at is None:
            self.closed_at = time.monotonic()


def _poll_healthz(base: str, stop: threading.Event, latencies: list[float], errors: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=5) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.get("/healthz")
                if response.status_code != 200:
                    errors.append(f"/healthz {response.status_code}: {response.text}")
                listed = client.get("/api/apps")
                if listed.status_code != 200:
                    errors.append(f"/api/apps {listed.status_code}: {listed.text}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)


def test_slow_loris_connections_are_closed_and_the_engine_keeps_answering(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn, DURABLE_REQUEST_TIMEOUT_MS=TIMEOUT_MS), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id = httpx.post(f"{base}/api/apps", json={"name": "slow"}).json()["id"]
        prefixes = {
            "headers": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            "body": (
                f"POST /api/apps/{app_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                '{"name": "never", "data": {"pad": "'
            ).encode(),
            "silent": b"",
        }
        latencies: list[float] = []
        errors: list[str] = []
        stop = threading.Event()
        poller = threading.Thread(target=_poll_healthz, args=(base, stop, latencies, errors), daemon=True)
        poller.start()
        clients = [
            Slow(engine.port, kind, prefixes[kind]) for kind, n in CONNECTIONS.items() for _ in range(n)
        ]
        opened_by = time.monotonic()
        selector = selectors.DefaultSelector()
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        deadline = opened_by + TIMEOUT_MS / 1000 + SLACK_S + 5
        next_trickle = time.monotonic()
        registered = set(clients)
        while time.monotonic() < deadline and registered:
            for key, _ in selector.select(timeout=0.05):
                key.data.readable()
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_EVERY_S
                for client in registered:
                    if client.kind != "silent" and client.closed_at is None:
                        client.trickle(b"a" if client.kind == "headers" else b"x")
            for client in [c for c in registered if c.closed_at is not None]:
                selector.unregister(client.sock)
                client.sock.close()
                registered.discard(client)
        stop.set()
        poller.join(10)
        for client in registered:
            client.sock.close()

        open_still = [c.kind for c in clients if c.closed_at is None or c.closed_at > deadline]
        assert not open_still, f"{len(open_still)} connections outlived the bound: {sorted(set(open_still))}"
        lifetimes = [c.closed_at - c.opened for c in clients if c.closed_at is not None]
        bound = TIMEOUT_MS / 1000 + SLACK_S
        assert max(lifetimes) < bound, f"a slow connection lived {max(lifetimes):.1f} s (bound {bound} s)"
        # Closed by the deadline, not at once (a server refusing every connection would pass the above).
        assert min(lifetimes) > TIMEOUT_MS / 1000 * 0.8, (
            f"a connection was closed after {min(lifetimes):.2f} s"
        )
        assert not errors, errors[:5]
        assert len(latencies) >= 10, latencies
        assert max(latencies) < HEALTHZ_BOUND_S, f"/healthz + /api/apps took up to {max(latencies):.2f} s"
        # None of the trickled bodies was stored.
        events = httpx.get(f"{base}/api/apps/{app_id}/events").json()["items"]
        assert events == [], events
        # Afterwards the engine serves as before.
        assert httpx.get(f"{base}/healthz").status_code == 200
    finally:
        engine.stop()


def test_headers_over_64_kib_get_431(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        with socket.create_connection(("127.0.0.1", engine.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.sendall(b"X-Big: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"headers" in answer
        # A request with ordinary headers still works.
        assert httpx.get(f"http://127.0.0.1:{engine.port}/healthz").status_code == 200
    finally:
        engine.stop()


def test_a_bad_request_timeout_stops_start_up_with_one_line() -> None:
    line = refused_start(child_env(DURABLE_REQUEST_TIMEOUT_MS="30s"))
    assert "DURABLE_REQUEST_TIMEOUT_MS" in line, line
