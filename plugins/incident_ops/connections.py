"""Look up an Airflow connection that may be absent: every optional integration starts here.

Most integrations are off on a given deployment, and Airflow answers a missing connection with a
query on its metadata database every time (its secrets cache keeps only connections it found). The
API server asks on every webhook and Slack request, so lookups are remembered for a few seconds:
a connection added or changed in Airflow is seen within CACHE_SECONDS. One given in the environment
(`AIRFLOW_CONN_<ID>`) costs nothing to read and is always read afresh.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Connection

CACHE_SECONDS = 10.0
_cache: dict[str, tuple[float, Connection | None]] = {}
_lock = threading.Lock()


def _in_environment(conn_id: str) -> bool:
    return f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ


def _remembered(conn_id: str) -> tuple[bool, Connection | None]:
    with _lock:
        hit = _cache.get(conn_id)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return True, hit[1]
    return False, None


def _remember(conn_id: str, conn: Connection | None) -> Connection | None:
    with _lock:
        _cache[conn_id] = (time.monotonic(), conn)
    return conn


def forget_connections() -> None:
    """Drop every remembered lookup (tests, and after changing connections in-process)."""
    with _lock:
        _cache.clear()


def optional_connection(conn_id: str) -> Connection | None:
    """Return the connection `conn_id`, or None when it is not defined (the integration is off)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    in_env = _in_environment(conn_id)
    if not in_env:
        known, conn = _remembered(conn_id)
        if known:
            return conn
    try:
        found: Connection | None = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        found = None
    return found if in_env else _remember(conn_id, found)


async def aoptional_connection(conn_id: str) -> Connection | None:
    """Return the connection `conn_id` without blocking the event loop, or None when it is absent."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    in_env = _in_environment(conn_id)
    if not in_env:
        known, conn = _remembered(conn_id)
        if known:
            return conn
    try:
        found: Connection | None = await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        found = None
    return found if in_env else _remember(conn_id, found)
