"""Read a request body with a size limit, at the ASGI level, for every route and middleware of ours."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

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


def json_depth(value: Any) -> int:
    """Return how deeply a decoded JSON value nests (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    """Decode a JSON body; ValueError with a short reason when it is not JSON or nests too deeply."""
    if not raw.strip():
        raise ValueError("the body is empty")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    except ValueError as exc:  # also UnicodeDecodeError: not UTF-8
        raise ValueError(str(exc)[:200]) from None
    if json_depth(value) > max_depth:
        raise ValueError(f"the body nests deeper than {max_depth} levels")
    return value
