"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration once, at first import: point it at a throw-away home before any
# test module imports it, so the suite never touches the developer's ~/airflow.
_HOME = Path(tempfile.mkdtemp(prefix="incident-response-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), str(REPO / "plugins"), os.environ.get("PYTHONPATH")])
        ),
    }
)
for _name in [n for n in os.environ if n.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
    del os.environ[_name]

from tests.fakes.slack_server import FakeSlackServer  # noqa: E402


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach the Airflow process logs to the report of a failed test that ran a real Airflow."""
    from scripts.local_airflow import LocalAirflow

    report = yield
    stack = getattr(item, "funcargs", {}).get("airflow_stack")
    if report.failed and isinstance(stack, LocalAirflow):
        report.sections.append(("Airflow process logs", stack.log_tails()))
    return report


def pytest_sessionfinish(session, exitstatus) -> None:
    """Remove the throw-away Airflow home."""
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the throw-away Airflow metadata DB once per session (dag.test needs it)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    if result.returncode:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return _HOME


@pytest.fixture
def incident_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Give the test its own incident store (a SQLite file) through the `incident_store` connection."""
    path = tmp_path / "incident_store.db"
    monkeypatch.setenv("AIRFLOW_CONN_INCIDENT_STORE", f'{{"conn_type": "sqlite", "host": "{path}"}}')
    return f"sqlite:///{path}"


@pytest.fixture
def slack_server() -> Iterator[FakeSlackServer]:
    """Run a fake Slack Web API on 127.0.0.1 for one test."""
    with FakeSlackServer() as server:
        yield server


@pytest.fixture
def slack_connection(monkeypatch: pytest.MonkeyPatch, slack_server: FakeSlackServer) -> str:
    """Point ``slack_api_default`` (via ``AIRFLOW_CONN_SLACK_API_DEFAULT``) at the fake; return its id."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", slack_server.connection_json())
    return "slack_api_default"
