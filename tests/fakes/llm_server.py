"""Loopback fake of an OpenAI-compatible ``POST /v1/chat/completions``, programmable per call."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["DEFAULT_TEST_KEY", "FakeLlmServer", "LlmRequest", "Reply"]

DEFAULT_TEST_KEY = "sk-test-0123456789abcdefghij"
DEFAULT_MODEL = "fake-gpt"
# Bounds: a hung answer never outlives this, and a request body never exceeds that.
MAX_HANG_SECONDS = 10.0
_MAX_BODY_BYTES = 2_000_000


@dataclass(frozen=True)
class LlmRequest:
    """One request the fake received, in arrival order."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    time: float = field(compare=False)

    @property
    def authorization(self) -> str | None:
        """Return the Authorization header, case-insensitively."""
        return next((v for k, v in self.headers.items() if k.lower() == "authorization"), None)

    def header(self, name: str) -> str | None:
        """Return header `name`, case-insensitively."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def schema(self) -> dict[str, Any] | None:
        """Return the JSON schema of a ``json_schema`` response_format, if any."""
        fmt = self.body.get("response_format") or {}
        return (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None

    @property
    def schema_name(self) -> str | None:
        fmt = self.body.get("response_format") or {}
        return (fmt.get("json_schema") or {}).get("name")

    @property
    def action_enum(self) -> list[str] | None:
        """Return the allow-list the request's schema puts on recommended_action."""
        schema = self.schema or {}
        return ((schema.get("properties") or {}).get("recommended_action") or {}).get("enum")

    @property
    def prompt(self) -> str:
        """Return every message's content joined: what was sent to the model."""
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))

    @property
    def is_diagnosis(self) -> bool:
        """Say whether this request asks for a diagnosis (rather than a summary)."""
        if self.schema is not None:
            return "recommended_action" in (self.schema.get("properties") or {})
        return "recommended_action" in self.prompt


@dataclass(frozen=True)
class Reply:
    """What the fake does for one request. Build with the class methods."""

    kind: str
    status: int = 200
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None
    hang: float = 0.0
    raw_body: bytes | None = None
    make: Callable[[LlmRequest], Reply] | None = None

    @classmethod
    def json(cls, obj: Any, *, usage: dict[str, int] | None = None, finish_reason: str = "stop") -> Reply:
        """Answer 200 with `obj` serialised as the message content."""
        return cls("answer", content=json.dumps(obj), usage=usage, finish_reason=finish_reason)

    @classmethod
    def text(cls, content: str, *, finish_reason: str = "stop", usage: dict[str, int] | None = None) -> Reply:
        """Answer 200 with `content` as-is (prose, fenced JSON, truncated JSON...)."""
        return cls("answer", content=content, usage=usage, finish_reason=finish_reason)

    @classmethod
    def truncated(cls) -> Reply:
        """Answer with JSON cut off mid-string, as a server hitting max_tokens does."""
        return cls.text('{"severity": "critical", "diagnosis": "The downstream val', finish_reason="length")

    @classmethod
    def error(cls, status: int, *, retry_after: float | str | None = None, body: Any = None) -> Reply:
        """Answer `status` (429, 500, 401...) with an OpenAI-style error body."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        payload = body if body is not None else {"error": {"message": f"fake error {status}", "type": "fake"}}
        return cls("error", status=status, headers=headers, raw_body=json.dumps(payload).encode())

    @classmethod
    def no_answer(cls, seconds: float = 2.0) -> Reply:
        """Hold the request `seconds` (bounded) without answering, then drop the connection."""
        return cls("hang", hang=min(seconds, MAX_HANG_SECONDS))

    @classmethod
    def valid(
        cls,
        *,
        action: str | None = None,
        severity: str = "critical",
        confidence: float = 0.85,
        summary: str = "Pump pressure spiked well above its limit.",
        diagnosis: str = "A closed downstream valve is the likely cause of the spike.",
    ) -> Reply:
        """Answer a well-formed summary or diagnosis, whichever the request asks for.

        The action defaults to the first entry of the request's allow-list.
        """

        def make(request: LlmRequest) -> Reply:
            if not request.is_diagnosis:
                return cls.json({"summary": summary})
            chosen = action or (request.action_enum or ["reduce_load"])[0]
            return cls.json(
                {
                    "severity": severity,
                    "diagnosis": diagnosis,
                    "recommended_action": chosen,
                    "confidence": confidence,
                }
            )

        return cls("dynamic", make=make)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the request list is the record."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, fake: FakeLlmServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeLlmServer:
    """
    A chat completions endpoint on 127.0.0.1, serving in a daemon thread.

    Replies are taken from a queue (:meth:`enqueue`), then :attr:`default` once the queue is empty.

    :param default: The reply when nothing is queued (a well-formed answer unless told otherwise).
    :param key: The only accepted bearer key (401 otherwise), or None to accept anything.
    """

    def __init__(self, *, default: Reply | None = None, key: str | None = DEFAULT_TEST_KEY) -> None:
        self.default = default or Reply.valid()
        self.key = key
        self._queue: deque[Reply] = deque()
        self._requests: list[LlmRequest] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral loopback port and serve."""
        if self._server is not None:
            raise RuntimeError("FakeLlmServer already started")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeLlmServer is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection_json(self, **extra: Any) -> str:
        """Return an ``AIRFLOW_CONN_LLM_DEFAULT`` value pointing here, with fast test settings and `extra`."""
        settings: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {self.key or DEFAULT_TEST_KEY}"},
            "model": DEFAULT_MODEL,
            "timeout": 1.0,
            "backoff_initial": 0.01,
            "backoff_max": 0.5,
            "max_wait": 1.0,
            "deadline": 20,
        }
        settings.update(extra)
        return json.dumps({"conn_type": "http", "host": self.base_url, "extra": settings})

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[LlmRequest]:
        with self._lock:
            return list(self._requests)

    # -- serving ---------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self._send(handler, 413, b'{"error": {"message": "too large"}}', {})
            return
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        request = LlmRequest(
            path=handler.path, headers=dict(handler.headers.items()), body=body, time=time.monotonic()
        )
        with self._lock:
            self._requests.append(request)
            reply = self._queue.popleft() if self._queue else self.default
        if handler.path != "/v1/chat/completions":
            self._send(handler, 404, b'{"error": {"message": "not found"}}', {})
            return
        if self.key is not None and request.authorization != f"Bearer {self.key}":
            self._send(handler, 401, b'{"error": {"message": "invalid api key"}}', {})
            return
        while reply.kind == "dynamic" and reply.make is not None:
            reply = reply.make(request)
        if reply.kind == "hang":
            self._stop.wait(reply.hang)
            handler.close_connection = True
            return
        if reply.kind == "error":
            self._send(handler, reply.status, reply.raw_body or b"{}", reply.headers)
            return
        self._send(handler, 200, json.dumps(self._completion(request, reply)).encode(), reply.headers)

    @staticmethod
    def _completion(request: LlmRequest, reply: Reply) -> dict[str, Any]:
        prompt_tokens = max(1, len(request.prompt) // 4)
        completion_tokens = max(1, len(reply.content or "") // 4)
        usage = reply.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model or DEFAULT_MODEL,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": reply.finish_reason,
                    "message": {"role": "assistant", "content": reply.content},
                }
            ],
            "usage": usage,
        }

    @staticmethod
    def _send(handler: _Handler, status: int, payload: bytes, headers: dict[str, str]) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer
