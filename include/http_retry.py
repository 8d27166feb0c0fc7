"""When an HTTP answer is worth retrying, and how long the server asked us to wait."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Request timeout, conflict (a concurrent twin holds the idempotency key), too early, rate limited.
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})


def is_transient_status(status: int) -> bool:
    """Say whether a later attempt may get past this HTTP status (5xx and a few 4xx)."""
    return status >= 500 or status in _TRANSIENT_4XX


def parse_retry_after(headers: Mapping[str, Any] | None, *, now: datetime | None = None) -> float | None:
    """Return the delay an answer asks for (``retry-after-ms``, ``Retry-After`` seconds or date), if any.

    Header names are matched case-insensitively; a header given as a list counts by its first value.
    """
    values: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if value is not None:
            values.setdefault(str(key).lower(), str(value).strip())
    raw_ms = values.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = values.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
