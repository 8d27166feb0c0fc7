"""conversations.history and conversations.replies of the fake Slack Web API, over its stored messages."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["history", "replies"]

_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000


def _flag(value: Any) -> bool:
    """Read a boolean argument the way Slack does (``true``/``1``, form or JSON)."""
    return value is True or str(value).lower() in {"1", "true"}


def _in_range(ts: str, body: Mapping[str, Any]) -> bool:
    """Say whether ts lies between ``oldest`` and ``latest`` (exclusive unless ``inclusive``)."""
    inclusive = _flag(body.get("inclusive"))
    value = float(ts)
    if body.get("oldest") not in (None, ""):
        oldest = float(body["oldest"])
        if value < oldest or (value == oldest and not inclusive):
            return False
    if body.get("latest") not in (None, ""):
        latest = float(body["latest"])
        if value > latest or (value == latest and not inclusive):
            return False
    return True


def _shown(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
    """Return a copy of a message as the API shows it (metadata only when asked for)."""
    shown = copy.deepcopy(message)
    if not with_metadata:
        shown.pop("metadata", None)
    return shown


def _page(found: list[dict[str, Any]], body: Mapping[str, Any]) -> dict[str, Any]:
    """Cut one page out of found by ``cursor`` (an offset here) and ``limit``."""
    try:
        limit = min(max(int(body.get("limit") or _DEFAULT_LIMIT), 1), _MAX_LIMIT)
        start = int(body.get("cursor") or 0)
    except ValueError:
        return {"ok": False, "error": "invalid_arguments"}
    page = found[start : start + limit]
    more = start + limit < len(found)
    return {
        "ok": True,
        "messages": page,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


def history(
    messages: Mapping[tuple[str, str], dict[str, Any]], channel_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Answer conversations.history: the channel's top-level messages, newest first."""
    with_metadata = _flag(body.get("include_all_metadata"))
    found = [
        _shown(m, with_metadata)
        for (ch, ts), m in messages.items()
        if ch == channel_id and m.get("thread_ts", ts) == ts and _in_range(ts, body)
    ]
    found.sort(key=lambda m: float(m["ts"]), reverse=True)
    return _page(found, body)


def replies(
    messages: Mapping[tuple[str, str], dict[str, Any]], channel_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Answer conversations.replies: a thread's parent then its replies, oldest first."""
    thread_ts = str(body.get("ts") or "")
    if (channel_id, thread_ts) not in messages:
        return {"ok": False, "error": "thread_not_found"}
    with_metadata = _flag(body.get("include_all_metadata"))
    found = [
        _shown(m, with_metadata)
        for (ch, ts), m in messages.items()
        if ch == channel_id and (ts == thread_ts or m.get("thread_ts") == thread_ts) and _in_range(ts, body)
    ]
    found.sort(key=lambda m: float(m["ts"]))
    return _page(found, body)
