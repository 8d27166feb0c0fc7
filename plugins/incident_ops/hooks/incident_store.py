"""Reach the incident store through the `incident_store` connection, or the embedded SQLite file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.engine import URL

from include.store import IncidentStore

STORE_CONN_ID = "incident_store"
log = logging.getLogger(__name__)
_stores: dict[str, IncidentStore] = {}


class IncidentStoreConfigError(ValueError):
    """The `incident_store` connection is of a type the store cannot use."""


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def default_url() -> str:
    """Return the embedded default: a SQLite file next to Airflow's own files."""
    return f"sqlite:///{_airflow_home() / 'incident_store.db'}"


def _lookup(conn_id: str):
    """Return the connection, or None when it is not defined."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk.bases.hook import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def url_from_connection(conn) -> str:
    """Turn an Airflow connection into a SQLAlchemy URL."""
    kind = (conn.conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    if kind == "sqlite":
        return f"sqlite:///{conn.host}"
    raise IncidentStoreConfigError(
        f"connection {conn.conn_id!r} has type {conn.conn_type!r}; "
        "use postgres (or sqlite for a single machine)"
    )


def store_url(conn_id: str = STORE_CONN_ID) -> str:
    """Return the store's database URL from the connection, or the embedded default."""
    conn = _lookup(conn_id)
    return default_url() if conn is None else url_from_connection(conn)


def store_for_url(url: str) -> IncidentStore:
    """Return the process's store at `url`, creating its tables the first time."""
    if url not in _stores:
        _stores[url] = IncidentStore.from_url(url)
    return _stores[url]


def get_store(conn_id: str = STORE_CONN_ID) -> IncidentStore:
    """Return the store the connection `conn_id` points at (or the embedded default)."""
    return store_for_url(store_url(conn_id))


async def aget_store(conn_id: str = STORE_CONN_ID) -> IncidentStore:
    """Return the store for `conn_id`, looking the connection up without blocking the event loop."""
    import asyncio

    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk.bases.hook import BaseHook

    try:
        conn = await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    url = default_url() if conn is None else url_from_connection(conn)
    return await asyncio.to_thread(store_for_url, url)
