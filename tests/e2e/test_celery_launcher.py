"""The run-celery launcher, Airflow not started: its settings, and a clear refusal when a service is down."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_airflow import LocalAirflowError
from scripts.local_airflow.celery_stack import CeleryAirflow, worker_count
from scripts.local_airflow.services import check_redis, database_of, shown_url
from tests.e2e.conftest import REPO, free_port

pytestmark = pytest.mark.celery


def stack(tmp_path: Path, **env: str) -> CeleryAirflow:
    return CeleryAirflow(tmp_path / "home", free_port(), extra_env=env, inherit_airflow_env=False)


def test_defaults_are_the_celery_topology_on_local_postgres_and_redis(tmp_path: Path) -> None:
    env = stack(tmp_path).env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/incident_response_airflow"
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["AIRFLOW_CONN_INCIDENT_STORE"] == "postgres://postgres@127.0.0.1:5432/incident_store"
    # The result backend is left to the provider: the metadata DB.
    assert "AIRFLOW__CELERY__RESULT_BACKEND" not in env
    # Shared signing keys, as with make run: workers' tasks must be accepted by the API server.
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64


def test_the_environment_overrides_every_default(tmp_path: Path) -> None:
    overrides = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://af:pw@db.internal:5433/meta",
        "AIRFLOW__CELERY__BROKER_URL": "redis://broker.internal:6380/2",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://af:pw@db.internal:5433/results",
        "AIRFLOW_CONN_INCIDENT_STORE": "postgres://store:pw@db.internal:5433/store",
    }
    env = stack(tmp_path, **overrides).env
    assert {k: env[k] for k in overrides} == overrides


def test_two_workers_by_default_each_with_its_own_hostname(tmp_path: Path) -> None:
    two = stack(tmp_path)
    assert list(two.component_args) == [
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        "worker-1",
        "worker-2",
    ]
    hostnames = {two.component_args[n][3] for n in two.worker_names}
    assert len(hostnames) == 2
    assert two.component_args["worker-1"][:3] == ("celery", "worker", "--celery-hostname")
    assert two.component_env("worker-2")["LOCAL_AIRFLOW_WORKER_NAME"] == "worker-2"
    assert "LOCAL_AIRFLOW_WORKER_NAME" not in two.component_env("scheduler")
    assert len(stack(tmp_path, CELERY_WORKERS="3").worker_names) == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_worker_count_that_is_not_a_positive_integer_is_refused(value: str) -> None:
    with pytest.raises(LocalAirflowError, match="CELERY_WORKERS must be a positive integer"):
        worker_count({"CELERY_WORKERS": value})


def test_the_worker_hostname_callable_names_the_worker() -> None:
    code = "from scripts.local_airflow.worker_hostname import hostname; print(hostname())"
    env = {"PYTHONPATH": str(REPO), "LOCAL_AIRFLOW_WORKER_NAME": "worker-7"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == f"worker-7@{socket.getfqdn()}"


def test_database_urls_and_connections_are_read_without_showing_passwords() -> None:
    meta = database_of("X", "postgresql+psycopg2://af:s3cret@db:5433/meta")
    assert (meta.host, meta.port, meta.user, meta.password, meta.name) == ("db", 5433, "af", "s3cret", "meta")
    assert "s3cret" not in meta.shown
    as_json = database_of("Y", json.dumps({"conn_type": "postgres", "host": "db", "schema": "store"}))
    assert (as_json.host, as_json.port, as_json.user, as_json.name) == ("db", 5432, "postgres", "store")
    assert database_of("Z", "sqlite:////tmp/x.db") is None
    assert shown_url("redis://:s3cret@broker:6379/0") == "redis://:***@broker:6379/0"


@pytest.fixture
def refusing_redis() -> Iterator[int]:
    """A loopback server that answers every command as a Redis with a password would."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    port = server.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            received.append(conn.recv(512))
            conn.sendall(b"-NOAUTH Authentication required.\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    thread.join(timeout=10)
    server.close()
    assert received == [b"*1\r\n$4\r\nPING\r\n"]


def test_a_redis_that_wants_a_password_is_named(refusing_redis: int) -> None:
    with pytest.raises(LocalAirflowError, match="refused PING: -NOAUTH") as err:
        check_redis(f"redis://127.0.0.1:{refusing_redis}/0")
    assert "AIRFLOW__CELERY__BROKER_URL" in str(err.value)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        (
            "AIRFLOW__CELERY__BROKER_URL",
            "redis://127.0.0.1:{port}/0",
            "cannot reach Redis at redis://127.0.0.1",
        ),
        (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgresql+psycopg2://postgres:s3cret@127.0.0.1:{port}/meta",
            "cannot reach PostgreSQL at postgresql://postgres@127.0.0.1",
        ),
    ],
    ids=["redis", "postgres"],
)
def test_make_run_celery_stops_before_starting_anything_when_a_service_is_down(
    tmp_path: Path, setting: str, value: str, named: str
) -> None:
    home = tmp_path / "home"
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__PORT": str(free_port()),
        # Both reachable (or not) on their own; only the one under test points at a closed port.
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
        setting: value.format(port=free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "scripts.local_airflow", "--celery", "--no-demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert named in result.stdout and "To fix: start" in result.stdout
    assert "s3cret" not in result.stdout
    assert "Starting" not in result.stdout and not (home / "logs").exists()
