"""Loopback fake of a JSON HTTP API (device control, ticketing) that records calls and answers as told."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_MAX_BODY = 1_000_000


class FakeJsonService:
    """Answer every POST with the next programmed status (default 200) and a JSON body; GETs as told."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._statuses: list[int] = []
        self._documents: dict[str, tuple[int, Any]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    status = fake._statuses.pop(0) if fake._statuses else 200
                    fake.calls.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body, "status": status}
                    )
                    answer = json.dumps({"id": f"T-{len(fake.calls)}", "ok": status < 400}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                with fake._lock:
                    status, document = fake._documents.get(self.path, (404, {"error": "not found"}))
                    fake.calls.append(
                        {"path": self.path, "headers": dict(self.headers), "body": None, "status": status}
                    )
                answer = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer_next(self, *statuses: int) -> None:
        """Answer the next calls with these HTTP statuses."""
        with self._lock:
            self._statuses.extend(statuses)

    def serve(self, path: str, document: Any, status: int = 200) -> None:
        """Answer GET `path` with `document` and `status` (other paths: 404)."""
        with self._lock:
            self._documents[path] = (status, document)

    def connection_json(self) -> str:
        """Return an Airflow HTTP connection (JSON, for AIRFLOW_CONN_*) pointing here."""
        host, port = self._server.server_address[:2]
        return json.dumps({"conn_type": "http", "host": f"http://{host}", "port": port})

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
