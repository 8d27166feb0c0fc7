"""Wait for a condition with a deadline, and judge Airflow's health check."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

HEALTH_JOBS = {"scheduler": "scheduler", "triggerer": "triggerer", "dag_processor": "dag_processor"}


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call check until it returns something truthy, or raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, remaining))


def all_healthy(body: Any, since: datetime) -> bool:
    """Return whether the health body shows the DB and heartbeats newer than since of all three jobs."""
    if not isinstance(body, dict) or body.get("metadatabase", {}).get("status") != "healthy":
        return False
    for key, job in HEALTH_JOBS.items():
        info = body.get(key) or {}
        beat = parse_time(info.get(f"latest_{job}_heartbeat"))
        if info.get("status") != "healthy" or beat is None or beat < since:
            return False
    return True


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO 8601 time from the API, treating a naive one as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
