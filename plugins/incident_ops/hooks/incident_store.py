"""Reach the incident store through the `incident_store` connection, or the embedded SQLite file."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseHook
from sqlalchemy.engine import URL

from incident_ops.connections import aoptional_connection, optional_connection
from incident_ops.hooks.errors import IncidentStoreConfigError
from include.names import STORE_CONN_ID
from include.store import IncidentStore

log = logging.getLogger(__name__)
# One store (engine and connection pool) per database URL and process.
_stores: dict[str, IncidentStore] = {}


class IncidentStoreHook(BaseHook):
    """The incident store: its own database (PostgreSQL, or SQLite on one machine), never Airflow's.

    Without the connection, the store is a SQLite file in ``$AIRFLOW_HOME``.

    :param incident_store_conn_id: Connection of type ``postgres`` (or ``sqlite``, host = the file).
    """

    conn_name_attr = "incident_store_conn_id"
    default_conn_name = STORE_CONN_ID
    conn_type = "postgres"
    hook_name = "Incident store"
    _stores: ClassVar[dict[str, IncidentStore]] = _stores

    def __init__(self, incident_store_conn_id: str = STORE_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_store_conn_id = incident_store_conn_id

    def get_conn(self) -> IncidentStore:
        """Return the store the connection points at (or the embedded default)."""
        return store_for_url(url_for(optional_connection(self.incident_store_conn_id)))

    async def aget_conn(self) -> IncidentStore:
        """Return the store, looking the connection up without blocking the event loop."""
        url = url_for(await aoptional_connection(self.incident_store_conn_id))
        return await asyncio.to_thread(store_for_url, url)


def default_url() -> str:
    """Return the embedded default: a SQLite file next to Airflow's own files."""
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return f"sqlite:///{home / 'incident_store.db'}"


def url_for(conn: Any) -> str:
    """Turn an Airflow connection (or None: the embedded default) into a SQLAlchemy URL."""
    if conn is None:
        return default_url()
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


def store_for_url(url: str) -> IncidentStore:
    """Return the process's store at `url`, creating its tables the first time."""
    if url not in _stores:
        _stores[url] = IncidentStore.from_url(url)
    return _stores[url]


def get_store(conn_id: str = STORE_CONN_ID) -> IncidentStore:
    """Return the store the connection `conn_id` points at (or the embedded default)."""
    return IncidentStoreHook(conn_id).get_conn()
