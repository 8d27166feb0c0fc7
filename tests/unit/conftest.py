"""Fixtures of the incident store tests: every store test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.store import IncidentStore
from tests.unit.store_helpers import PG_DSN

# -- backends -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Create a throw-away database on the local PostgreSQL for this session; drop it afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(**PG_DSN)
    except psycopg2.OperationalError as exc:
        reason = (
            f"PostgreSQL is not reachable at {PG_DSN['host']}:{PG_DSN['port']} as user postgres ({exc}). "
            "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    admin.autocommit = True
    name = f"ir_unit_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@{PG_DSN['host']}:{PG_DSN['port']}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


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
