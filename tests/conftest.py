"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.slack_server import FakeSlackServer


@pytest.fixture
def slack_server() -> Iterator[FakeSlackServer]:
    """Run a fake Slack Web API on 127.0.0.1 for one test."""
    with FakeSlackServer() as server:
        yield server


@pytest.fixture
def slack_connection(monkeypatch: pytest.MonkeyPatch, slack_server: FakeSlackServer) -> str:
    """Define ``slack_api_default`` (via ``AIRFLOW_CONN_SLACK_API_DEFAULT``) pointing at the fake; return its id."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", slack_server.connection_json())
    return "slack_api_default"
