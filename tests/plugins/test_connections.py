"""Optional connections: a missing one is asked of Airflow once per few seconds, an env one every time."""

from __future__ import annotations

import pytest

from incident_ops import connections


@pytest.fixture(autouse=True)
def fresh_cache():
    connections.forget_connections()
    yield
    connections.forget_connections()


def test_a_missing_connection_is_looked_up_once_within_the_cache_window(monkeypatch):
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    calls = []

    def missing(conn_id):
        calls.append(conn_id)
        raise AirflowNotFoundException(conn_id)

    monkeypatch.delenv("AIRFLOW_CONN_NOT_HERE", raising=False)
    monkeypatch.setattr(BaseHook, "get_connection", staticmethod(missing))
    assert [connections.optional_connection("not_here") for _ in range(5)] == [None] * 5
    assert calls == ["not_here"]

    monkeypatch.setattr(connections, "CACHE_SECONDS", 0.0)  # the window has passed
    assert connections.optional_connection("not_here") is None
    assert calls == ["not_here", "not_here"]


def test_a_connection_from_the_environment_is_always_read_afresh(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV", '{"conn_type": "generic", "password": "one"}')
    assert connections.optional_connection("from_env").password == "one"
    monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV", '{"conn_type": "generic", "password": "two"}')
    assert connections.optional_connection("from_env").password == "two"
    monkeypatch.delenv("AIRFLOW_CONN_FROM_ENV")
    assert connections.optional_connection("from_env") is None
