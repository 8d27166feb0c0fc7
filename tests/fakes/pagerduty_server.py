"""Loopback fake of PagerDuty's Events API v2 (`POST /v2/enqueue`) that checks what it receives.

It answers as PagerDuty documents: 202 `{"status": "success", "dedup_key": ...}` for a valid event,
400 `{"status": "invalid event"}` for a malformed one or a wrong routing key (the Events API's only
credential, in the body). Every request is kept, so tests assert the events a dedup_key saw.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_MAX_BODY = 512 * 1024
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


class FakePagerDuty:
    """Accept Events API v2 events for one routing key; keep every request and the valid events."""

    def __init__(self, routing_key: str = "R0UTINGKEY0000000000000000000000") -> None:
        self.routing_key = routing_key
        self.requests: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, _MAX_BODY))
                status, answer = fake._handle(self.path, self.headers.get("Content-Type", ""), raw)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, path: str, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.requests.append({"path": path, "body": body})
            if self._statuses:
                return self._statuses.pop(0), {"status": "error", "message": "programmed failure"}
            if path != "/v2/enqueue":
                return 404, {"status": "not found"}
            problem = self._problem(content_type, body)
            if problem:
                return 400, {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": [problem],
                }
            dedup_key = body.get("dedup_key") or uuid.uuid4().hex
            self.events.append({**body, "dedup_key": dedup_key})
            return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    def _problem(self, content_type: str, body: Any) -> str | None:
        if not content_type.startswith("application/json") or not isinstance(body, dict):
            return "body must be a JSON object"
        if body.get("routing_key") != self.routing_key:
            return "invalid routing key"
        action = body.get("event_action")
        if action not in ACTIONS:
            return "event_action must be trigger, acknowledge or resolve"
        if action != "trigger" and not isinstance(body.get("dedup_key"), str):
            return "dedup_key is required for acknowledge and resolve"
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                return "payload is required for trigger"
            for key in ("summary", "source", "severity"):
                if not isinstance(payload.get(key), str) or not payload[key]:
                    return f"payload.{key} is required"
            if payload["severity"] not in SEVERITIES or len(payload["summary"]) > 1024:
                return "payload.severity or payload.summary is invalid"
        return None

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP statuses, whatever they carry."""
        with self._lock:
            self._statuses.extend(statuses)

    def actions_for(self, dedup_key: str) -> list[str]:
        """Return the event actions accepted for `dedup_key`, in order."""
        with self._lock:
            return [e["event_action"] for e in self.events if e["dedup_key"] == dedup_key]

    @property
    def url(self) -> str:
        """Return the base URL (what the connection's host holds)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def connection_json(self) -> str:
        """Return the `pagerduty_events` connection (JSON, for AIRFLOW_CONN_*) pointing here."""
        return json.dumps({"conn_type": "pagerduty_events", "host": self.url, "password": self.routing_key})

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
