"""Fixtures of the incident store tests: every store test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.store import IncidentStore
from tests.postgres import throwaway_database

# -- backends -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Create a throw-away database on the local PostgreSQL for this session; drop it afterwards."""
    with throwaway_database("ir_unit") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incident_store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[IncidentStore]:
    opened = IncidentStore.from_url(store_url)
    yield opened
    opened.engine.dispose()


@pytest.fixture
def run_id() -> str:
    # The PostgreSQL database is shared by the session: every test works on its own run.
    return f"manual__{uuid.uuid4().hex}"
