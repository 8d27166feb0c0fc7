"""Loopback fake of the Jira REST API v2 parts the product uses: create, search by label, comment.

It checks basic auth (login and API token) on every request (401 otherwise), refuses an issue for
another project or without a summary (400, Jira's `errors` shape), and keeps issues and comments so
tests can assert that a retry opened no second issue.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

_MAX_BODY = 512 * 1024
_JQL = re.compile(r'^project = "(?P<project>[A-Z0-9_]+)" AND labels = "(?P<label>[A-Za-z0-9_.-]+)"')
_COMMENT = re.compile(r"^/rest/api/2/issue/(?P<key>[A-Z0-9_]+-[0-9]+)/comment$")


class FakeJira:
    """Serve one project's issues for one user."""

    def __init__(
        self, *, project: str = "OPS", login: str = "bot@example.com", token: str = "jira-api-token"
    ) -> None:
        self.project, self.login, self.token = project, login, token
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._lose_answers = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self, status: int, answer: Any) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._respond(*fake._handle("GET", self.path, self.headers.get("Authorization"), None))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, _MAX_BODY))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                self._respond(*fake._handle("POST", self.path, self.headers.get("Authorization"), body))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.login}:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def _handle(self, method: str, target: str, auth: str | None, body: Any) -> tuple[int, Any]:
        url = urlsplit(target)
        with self._lock:
            self.requests.append({"method": method, "path": url.path, "query": url.query, "body": body})
            if not self._authorized(auth):
                return 401, {"errorMessages": ["You are not authenticated."]}
            if method == "POST" and url.path == "/rest/api/2/issue":
                return self._create(body)
            if method == "GET" and url.path == "/rest/api/2/search":
                return self._search(parse_qs(url.query).get("jql", [""])[0])
            match = _COMMENT.match(url.path)
            if method == "POST" and match:
                return self._comment(match["key"], body)
            return 404, {"errorMessages": ["no such resource"]}

    def _create(self, body: Any) -> tuple[int, Any]:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["fields are required"], "errors": {}}
        errors = {}
        if (fields.get("project") or {}).get("key") != self.project:
            errors["project"] = "valid project is required"
        if not (fields.get("issuetype") or {}).get("name"):
            errors["issuetype"] = "issue type is required"
        if (
            not isinstance(fields.get("summary"), str)
            or not fields["summary"]
            or len(fields["summary"]) > 255
        ):
            errors["summary"] = "You must specify a summary of the issue."
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        key = f"{self.project}-{len(self.issues) + 1}"
        self.issues.append({"key": key, "fields": fields})
        if self._lose_answers:
            # Created, but the answer is "lost": the client sees a server error and retries.
            self._lose_answers -= 1
            return 502, {"errorMessages": ["bad gateway"]}
        return 201, {
            "id": str(10000 + len(self.issues)),
            "key": key,
            "self": f"{self.url}/rest/api/2/issue/{key}",
        }

    def _search(self, jql: str) -> tuple[int, Any]:
        match = _JQL.match(jql)
        if not match:
            return 400, {"errorMessages": [f"unsupported JQL in this fake: {jql}"]}
        found = [
            {"key": i["key"], "fields": {}}
            for i in self.issues
            if match["project"] == self.project and match["label"] in (i["fields"].get("labels") or [])
        ]
        return 200, {"startAt": 0, "maxResults": 50, "total": len(found), "issues": found}

    def _comment(self, key: str, body: Any) -> tuple[int, Any]:
        if not any(i["key"] == key for i in self.issues):
            return 404, {"errorMessages": ["Issue does not exist"]}
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
            return 400, {"errorMessages": ["comment body is required"]}
        self.comments.append({"key": key, "body": body["body"]})
        return 201, {"id": str(len(self.comments)), "body": body["body"]}

    def lose_next_create_answer(self) -> None:
        """Create the next issue but answer 502, as a lost response would look to the client."""
        with self._lock:
            self._lose_answers += 1

    @property
    def url(self) -> str:
        """Return the base URL (the connection's host)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def connection_json(self, *, token: str | None = None) -> str:
        """Return the `jira` connection (JSON, for AIRFLOW_CONN_*) pointing here."""
        return json.dumps(
            {
                "conn_type": "jira",
                "host": self.url,
                "login": self.login,
                "password": token or self.token,
                "extra": {"project": self.project},
            }
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
