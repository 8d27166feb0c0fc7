"""Loopback fake of the Slack Web API (chat.postMessage/update, conversations.history/replies, auth.test)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl

from tests.fakes import slack_conversations

__all__ = [
    "DEFAULT_TEST_TOKEN",
    "FakeSlackServer",
    "RecordedRequest",
    "metadata_key",
    "slack_connection_json",
]

DEFAULT_TEST_TOKEN = "xoxb-test-token"
DEFAULT_CHANNELS: Mapping[str, str] = {
    "oncall": "C0ONCALL01",
    "incidents": "C0INCIDENT",
    "general": "C0GENERAL1",
}
BOT_USER_ID = "U0FAKEBOT1"
BOT_ID = "B0FAKEBOT1"
TEAM_ID = "T0FAKETEAM"

# A request body larger than this is refused; keeps a buggy client from exhausting memory.
_MAX_BODY_BYTES = 1_000_000


def _decode_json(value: Any) -> Any:
    """Return a JSON-string argument decoded (form bodies carry objects as strings), else the value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def metadata_key(body: Mapping[str, Any]) -> str | None:
    """Return the idempotency key a chat.postMessage body carried in its message metadata."""
    metadata = _decode_json(body.get("metadata"))
    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
    key = payload.get("key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


def slack_connection_json(base_url: str, token: str = DEFAULT_TEST_TOKEN) -> str:
    """Return an Airflow connection (JSON, for ``AIRFLOW_CONN_*``) pointing at ``base_url``."""
    return json.dumps({"conn_type": "slack", "password": token, "extra": {"base_url": base_url}})


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, in arrival order."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    content_type: str
    status: int
    time: float = field(compare=False)
    stored: bool = False  # a chat.postMessage that stored a message, whatever the answer said
    late: float = 0.0  # seconds the answer was held back (a client timeout when longer than its limit)

    @property
    def authorization(self) -> str | None:
        """Return the Authorization header, case-insensitively."""
        for key, value in self.headers.items():
            if key.lower() == "authorization":
                return value
        return None


class _Handler(BaseHTTPRequestHandler):
    """Route POST /api/<method> to the owning FakeSlackServer."""

    # HTTP/1.0 (the default): one request per connection, so stop() never waits on idle keep-alives.
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def do_GET(self) -> None:
        # Slack accepts GET with query arguments for most methods.
        self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the request list is the record."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, fake: FakeSlackServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeSlackServer:
    """
    A small Slack Web API on 127.0.0.1 speaking Slack's wire format, run in a daemon thread.

    :param token: The only accepted bot token, or ``None`` to accept any ``xox*`` token.
    :param channels: Channel names (without ``#``) mapped to ids; unmapped names get an id on first use.
    :param unknown_channels: Names or ids that answer ``channel_not_found``.
    """

    def __init__(
        self,
        *,
        token: str | None = DEFAULT_TEST_TOKEN,
        channels: Mapping[str, str] | None = None,
        unknown_channels: Iterable[str] = (),
    ) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._channels: dict[str, str] = dict(DEFAULT_CHANNELS if channels is None else channels)
        self._unknown: set[str] = {c.lstrip("#") for c in unknown_channels}
        self._requests: list[RecordedRequest] = []
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_ts_us = 1_700_000_000_000_000
        self._rate_limited: list[int] = []
        self._failures: list[int] = []
        # Faults that strike after the call was carried out: the post lands, the answer does not.
        self._failures_after_post: list[int] = []
        self._late: list[tuple[float, str | None]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeSlackServer:
        """Bind to an ephemeral loopback port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeSlackServer already started")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-slack-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """Return the bound port."""
        if self._server is None:
            raise RuntimeError("FakeSlackServer is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """Return the Web API base URL, e.g. ``http://127.0.0.1:PORT/api/``."""
        return f"http://127.0.0.1:{self.port}/api/"

    def connection_json(self, token: str | None = None) -> str:
        """Return an Airflow Slack connection (JSON) for this server."""
        return slack_connection_json(self.base_url, token or self.token or DEFAULT_TEST_TOKEN)

    # -- test controls -----------------------------------------------------------------------------

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """Answer the next ``n`` calls with HTTP 429 and ``Retry-After: retry_after``."""
        with self._lock:
            self._rate_limited.extend([retry_after] * n)

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` calls with an HTTP ``status`` error and a non-JSON body."""
        with self._lock:
            self._failures.extend([status] * n)

    def fail_after_next_post(self, n: int, status: int = 500) -> None:
        """Store the next ``n`` posted messages, then answer each with an HTTP ``status`` error."""
        with self._lock:
            self._failures_after_post.extend([status] * n)

    def answer_late(self, n: int, seconds: float, method: str | None = None) -> None:
        """Carry out the next ``n`` calls (of ``method``, if given), then wait ``seconds`` to answer."""
        with self._lock:
            self._late.extend([(seconds, method)] * n)

    def posts(self, key: str | None = None) -> list[RecordedRequest]:
        """Return the chat.postMessage calls that stored a message, optionally only those carrying `key`."""
        stored = [r for r in self.calls("chat.postMessage") if r.stored]
        return [r for r in stored if key is None or metadata_key(r.body) == key]

    def add_channel(self, name: str, channel_id: str) -> None:
        """Map a channel name (with or without ``#``) to an id."""
        with self._lock:
            self._channels[name.lstrip("#")] = channel_id

    def mark_unknown(self, channel: str) -> None:
        """Make a channel name or id answer ``channel_not_found``."""
        with self._lock:
            self._unknown.add(channel.lstrip("#"))

    def channel_id(self, channel: str) -> str:
        """Return the id a name maps to (assigning one if needed)."""
        with self._lock:
            resolved = self._resolve_channel(channel)
        if resolved is None:
            raise KeyError(channel)
        return resolved

    # -- inspection ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return every request received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str | None = None) -> list[RecordedRequest]:
        """Return the requests for one API method (e.g. ``chat.postMessage``), or all of them."""
        with self._lock:
            return [r for r in self._requests if method is None or r.method == method]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Return stored messages (deep copies), optionally for one channel name or id."""
        with self._lock:
            wanted = self._resolve_channel(channel) if channel is not None else None
            found = [m for (ch, _), m in self._messages.items() if wanted is None or ch == wanted]
            return copy.deepcopy(found)

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """Return one stored message (a deep copy), or ``None``."""
        with self._lock:
            channel_id = self._resolve_channel(channel)
            found = self._messages.get((channel_id or "", ts))
            return copy.deepcopy(found) if found is not None else None

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Return the stored replies in a thread."""
        return [m for m in self.messages(channel) if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    def reset(self) -> None:
        """Forget requests, messages and pending injected failures."""
        with self._lock:
            self._requests.clear()
            self._messages.clear()
            self._rate_limited.clear()
            self._failures.clear()
            self._failures_after_post.clear()
            self._late.clear()

    # -- request handling (server threads) -------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        """Parse, record and answer one request."""
        received = time.monotonic()
        path, _, query = handler.path.partition("?")
        method = path[len("/api/") :] if path.startswith("/api/") else ""
        headers = dict(handler.headers.items())
        content_type = handler.headers.get_content_type()
        length = int(handler.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self._reply(handler, 413, {"ok": False, "error": "request_too_large"})
            return
        raw = handler.rfile.read(length) if length > 0 else b""
        body = self._parse_body(raw, content_type, query)

        with self._lock:
            status, payload, extra_headers = self._dispatch(method, headers, body)
            stored = method == "chat.postMessage" and isinstance(payload, dict) and bool(payload.get("ok"))
            if stored and self._failures_after_post:
                status = self._failures_after_post.pop(0)
                payload, extra_headers = f"{status} upstream failure after the post (fake)", {}
            late = 0.0
            # Only a call that was carried out is answered late: an injected fault is answered at once.
            if self._late and status == 200 and self._late[0][1] in (None, method):
                late = self._late.pop(0)[0]
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    content_type=content_type,
                    status=status,
                    time=received,
                    stored=stored,
                    late=late,
                )
            )
        if late:
            time.sleep(late)  # bounded by the test's own setting; the client has given up by then
        try:
            self._reply(handler, status, payload, extra_headers)
        except OSError:
            pass  # the client hung up (timed out): what a late answer is for

    @staticmethod
    def _parse_body(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
        """Decode a JSON or form-encoded body (plus query args) like Slack does."""
        body: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        if not raw:
            return body
        text = raw.decode("utf-8", errors="replace")
        if content_type == "application/json":
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return {**body, "_invalid_json": text}
            if isinstance(parsed, dict):
                body.update(parsed)
            return body
        body.update(parse_qsl(text, keep_blank_values=True))
        return body

    @staticmethod
    def _reply(
        handler: _Handler,
        status: int,
        payload: dict[str, Any] | str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        """Write one response (JSON unless ``payload`` is plain text)."""
        if isinstance(payload, str):
            data, content_type = payload.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8"
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (extra_headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _dispatch(
        self, method: str, headers: Mapping[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
        """Decide the answer to one call (lock held)."""
        # Injected faults come first, as Slack's edge answers them before looking at the request.
        if self._rate_limited:
            retry_after = self._rate_limited.pop(0)
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        if self._failures:
            status = self._failures.pop(0)
            return status, f"{status} upstream failure (fake)", {}

        handlers = {
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "auth.test": self._auth_test,
        }
        if method not in handlers:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        auth_error = self._auth_error(headers, body)
        if auth_error:
            return 200, {"ok": False, "error": auth_error}, {}
        return 200, handlers[method](body), {}

    def _auth_error(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
        """Return ``not_authed``/``invalid_auth`` for a missing or wrong token."""
        token = None
        for key, value in headers.items():
            if key.lower() == "authorization" and value.startswith("Bearer "):
                token = value[len("Bearer ") :].strip()
        # Slack also accepts the token as a form field.
        token = token or body.get("token")
        if not token:
            return "not_authed"
        if self.token is not None and token != self.token:
            return "invalid_auth"
        if self.token is None and not str(token).startswith("xox"):
            return "invalid_auth"
        return None

    def _resolve_channel(self, channel: str | None) -> str | None:
        """Map a name or id to an id; ``None`` when unknown (lock held)."""
        if not channel:
            return None
        name = channel.lstrip("#")
        if name in self._unknown:
            return None
        if name in self._channels:
            return self._channels[name]
        if name in self._channels.values():
            return name
        if not channel.startswith("#") and name[:1] in {"C", "G", "D"} and name.isupper():
            # Looks like an id already: accept it as an existing conversation.
            self._channels.setdefault(name, name)
            return name
        new_id = f"C{len(self._channels) + 1:08d}"
        self._channels[name] = new_id
        return new_id

    def _next_ts(self) -> str:
        """Return a unique, increasing Slack ts like ``1700000000.000100`` (lock held)."""
        now_us = int(time.time() * 1_000_000)
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"

    @staticmethod
    def _decode_blocks(value: Any) -> tuple[list[Any] | None, str | None]:
        """Accept blocks as a list (JSON body) or a JSON string (form body)."""
        if value is None or value == "":
            return None, None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return None, "invalid_blocks_format"
        if not isinstance(value, list) or not all(isinstance(b, dict) and "type" in b for b in value):
            return None, "invalid_blocks"
        return value, None

    def _chat_post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store and echo a new message (lock held)."""
        channel_id = self._resolve_channel(body.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        blocks, blocks_error = self._decode_blocks(body.get("blocks"))
        if blocks_error:
            return {"ok": False, "error": blocks_error}
        text = body.get("text") or ""
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "text": text,
            "ts": ts,
        }
        if blocks is not None:
            message["blocks"] = blocks
        metadata = _decode_json(body.get("metadata"))
        if isinstance(metadata, dict) and metadata.get("event_type"):
            message["metadata"] = metadata
        thread_ts = body.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            parent = self._messages.get((channel_id, str(thread_ts)))
            if parent is not None:
                parent.setdefault("thread_ts", parent["ts"])
                parent["reply_count"] = parent.get("reply_count", 0) + 1
        self._messages[(channel_id, ts)] = message
        return {"ok": True, "channel": channel_id, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a stored message's text and blocks (lock held)."""
        channel_id = self._resolve_channel(body.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        ts = str(body.get("ts") or "")
        message = self._messages.get((channel_id, ts))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        blocks, blocks_error = self._decode_blocks(body.get("blocks"))
        if blocks_error:
            return {"ok": False, "error": blocks_error}
        text = body.get("text") or ""
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel_id,
            "ts": ts,
            "text": text,
            "message": copy.deepcopy(message),
        }

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """List a channel's top-level messages, newest first (lock held)."""
        channel_id = self._resolve_channel(body.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        return slack_conversations.history(self._messages, channel_id, body)

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """List a thread, parent first (lock held)."""
        channel_id = self._resolve_channel(body.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        return slack_conversations.replies(self._messages, channel_id, body)

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        """Describe the fake bot (what ``SlackHook.test_connection`` calls)."""
        return {
            "ok": True,
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "incident-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }
