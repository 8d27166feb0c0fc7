"""Fixtures running a real Airflow (api-server, scheduler, dag-processor, triggerer) per test module."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_airflow import LocalAirflow

REPO = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
# First start on a slow machine includes `airflow db migrate`; normally ready in 15-25 s.
READY_TIMEOUT = 180.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in tests/e2e as `e2e`."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def airflow_extra_env() -> dict[str, str]:
    """Return extra environment for the module's Airflow; override it to add connections or fakes."""
    return {}


@pytest.fixture(scope="module")
def airflow_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    airflow_extra_env: dict[str, str],
) -> Iterator[LocalAirflow]:
    """Run Airflow on a fresh home and free port for one module, logged in as admin; always stopped.

    Extra environment comes from the `airflow_extra_env` fixture, then from indirect parametrization
    (`request.param`, a dict), which wins.
    """
    extra_env = {**airflow_extra_env, **(getattr(request, "param", None) or {})}
    home = tmp_path_factory.mktemp("airflow_home")
    # Not inheriting AIRFLOW_* keeps a developer's shell (and tests/conftest.py's in-process
    # settings) from pointing this stack at another database, DAGs folder or connection.
    stack = LocalAirflow(home, free_port(), repo=REPO, extra_env=extra_env, inherit_airflow_env=False)
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(READY_TIMEOUT)
        stack.login("admin")
    except BaseException:
        print(f"Airflow did not start; process logs:\n{stack.log_tails()}")
        stack.stop()
        raise
    try:
        yield stack
    finally:
        stack.stop()
