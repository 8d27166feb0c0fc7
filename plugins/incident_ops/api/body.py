"""Read a request body with a size limit, at the ASGI level, for every route and middleware of ours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from include import bounded_json

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class BodyTooLarge(Exception):
    """The body is larger than the route accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Body:
    """What was read: the bytes, whether that is all of it, and a non-body message read past it."""

    data: bytes
    complete: bool
    pending: Message | None = None


def declared_too_large(headers: Any, limit: int) -> bool:
    """Say whether Content-Length already announces more than `limit` bytes (or is not a number)."""
    declared = headers.get("content-length")
    return declared is not None and (not declared.isdigit() or int(declared) > limit)


async def read_body(receive: Receive, limit: int) -> Body:
    """Read the body up to `limit` bytes; stop reading (complete=False) as soon as it passes it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away: what was read, then this message.
            return Body(b"".join(chunks), complete=False, pending=message)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return Body(b"".join(chunks), complete=False)
        if not message.get("more_body", False):
            return Body(b"".join(chunks), complete=True)


async def read_limited(receive: Receive, limit: int) -> bytes:
    """Return the whole body, or raise BodyTooLarge once it passes `limit` bytes."""
    body = await read_body(receive, limit)
    if not body.complete:
        raise BodyTooLarge(limit)
    return body.data


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    """Decode a JSON body; ValueError with a short reason when it is not JSON or nests too deeply."""
    if not raw.strip():
        raise ValueError("the body is empty")
    try:
        return bounded_json.loads(raw, max_depth=max_depth)
    except bounded_json.TooDeep:
        raise ValueError(f"the body nests deeper than {max_depth} levels") from None
    except ValueError as exc:  # also UnicodeDecodeError: not UTF-8
        raise ValueError(str(exc)[:200]) from None
