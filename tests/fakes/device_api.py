"""Loopback device-control API: ``POST /actions`` applied once per ``Idempotency-Key``, as a device would."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FakeDeviceApi"]

_MAX_BODY = 100_000
# A stalled answer never outlives this, so the server always stops.
_MAX_STALL_SECONDS = 30.0


class FakeDeviceApi:
    """Apply each action once per idempotency key and answer repeats with the first result.

    ``stall_after_applying(n, seconds)`` makes the next ``n`` new actions happen, then answers them
    only after ``seconds``: the client times out although the device acted.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.applied: Counter[str] = Counter()
        self._results: dict[str, dict[str, Any]] = {}
        self._stalls: list[float] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
                status, answer, stall = fake._apply(
                    self.path, self.headers.get("Idempotency-Key"), self.rfile.read(length)
                )
                time.sleep(stall)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting: the point of a stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _apply(self, path: str, key: str | None, raw: bytes) -> tuple[int, dict[str, Any], float]:
        """Apply (or replay) one action; return (status, answer, seconds to wait before answering)."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        with self._lock:
            self.requests.append({"path": path, "key": key, "body": body})
            if path != "/actions" or not isinstance(body, dict) or not body.get("action"):
                return 400, {"error": "expected POST /actions with an action"}, 0.0
            if not key:
                return 400, {"error": "Idempotency-Key is required"}, 0.0
            if key in self._results:
                return 200, {**self._results[key], "replayed": True}, 0.0
            self.applied[key] += 1
            result = {"action": body["action"], "device_id": body.get("device_id"), "applied": True}
            self._results[key] = result
            stall = min(self._stalls.pop(0), _MAX_STALL_SECONDS) if self._stalls else 0.0
            return 200, result, stall

    def stall_after_applying(self, n: int, seconds: float) -> None:
        """Apply the next ``n`` new actions, then hold each answer ``seconds``."""
        with self._lock:
            self._stalls.extend([seconds] * n)

    def sent(self, key: str) -> list[dict[str, Any]]:
        """Return the requests that carried ``key``."""
        with self._lock:
            return [r for r in self.requests if r["key"] == key]

    def connection_json(self, timeout: float = 2.0) -> str:
        """Return an Airflow HTTP connection (JSON) here, with a client timeout (seconds)."""
        host, port = self._server.server_address[:2]
        return json.dumps(
            {"conn_type": "http", "host": f"http://{host}", "port": port, "extra": {"timeout": timeout}}
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
