"""JSON from outside, decoded with a bound on nesting: no hostile body can exhaust the stack.

Python's decoder recurses once per level and raises RecursionError past about a thousand; every
entry point (webhooks, Slack, MQTT) decodes through :func:`loads` so that is a refusal, not a crash.
"""

from __future__ import annotations

import json
from typing import Any

# Deep enough for any sender's payload (Alertmanager's is 4 levels), far below the stack's limit.
MAX_JSON_DEPTH = 64


class TooDeep(ValueError):
    """The JSON nests deeper than allowed."""


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


def loads(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON; TooDeep past `max_depth`, ValueError (UnicodeDecodeError too) when it is not JSON."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeep("the JSON nests too deeply") from None
    if json_depth(value) > max_depth:
        raise TooDeep(f"the JSON nests deeper than {max_depth} levels")
    return value
