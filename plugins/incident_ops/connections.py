"""Look up an Airflow connection that may be absent: every optional integration starts here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Connection


def optional_connection(conn_id: str) -> Connection | None:
    """Return the connection `conn_id`, or None when it is not defined (the integration is off)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


async def aoptional_connection(conn_id: str) -> Connection | None:
    """Return the connection `conn_id` without blocking the event loop, or None when it is absent."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        return None
