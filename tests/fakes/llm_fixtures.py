"""Fixtures for the fake LLM endpoint; import them into a test module:

from tests.fakes.llm_fixtures import llm_server, llm_connection  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.llm_server import FakeLlmServer

LLM_CONN_ENV = "AIRFLOW_CONN_LLM_DEFAULT"


@pytest.fixture
def llm_server() -> Iterator[FakeLlmServer]:
    """Run a fake chat completions endpoint on 127.0.0.1 for one test."""
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
def llm_connection(monkeypatch: pytest.MonkeyPatch, llm_server: FakeLlmServer):
    """Define ``llm_default`` pointing at the fake; return a function redefining it with other extra keys."""

    def configure(**extra: Any) -> str:
        monkeypatch.setenv(LLM_CONN_ENV, llm_server.connection_json(**extra))
        return "llm_default"

    configure()
    return configure
