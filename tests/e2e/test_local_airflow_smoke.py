"""Prove the e2e harness: a real Airflow starts, authenticates, runs a DAG and stops without leftovers.

The DAGs folder holds one trivial DAG so this does not depend on the product DAG. The tests share one
stack and run in file order; the last one stops it.
"""

from __future__ import annotations

import textwrap
import uuid

import pytest

from scripts.local_airflow import COMPONENTS, LocalAirflow, pid_alive

DAG_ID = "smoke_hello"
TASK_ID = "say_hello"
GREETING = "hello from the smoke DAG"

SMOKE_DAG = textwrap.dedent(
    f'''
    """One-task DAG used by the harness smoke test."""

    from __future__ import annotations

    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG


    def _say_hello() -> str:
        print({GREETING!r})
        return "ok"


    with DAG(dag_id={DAG_ID!r}, schedule=None, catchup=False, tags=["smoke"]):
        PythonOperator(task_id={TASK_ID!r}, python_callable=_say_hello)
    '''
)


@pytest.fixture(scope="module")
def airflow_extra_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Point the stack at a DAGs folder holding only the smoke DAG."""
    dags = tmp_path_factory.mktemp("smoke_dags")
    (dags / "smoke_hello.py").write_text(SMOKE_DAG)
    return {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}


def test_stack_starts_and_reports_version(airflow_stack: LocalAirflow, capsys: pytest.CaptureFixture) -> None:
    with capsys.disabled():
        print(
            f"\nAirflow api-server, scheduler, dag-processor and triggerer ready after "
            f"{airflow_stack.ready_after:.1f}s"
        )
    status, body = airflow_stack.api("GET", "/api/v2/version")
    assert status == 200
    assert body["version"] == "3.3.2"


def test_all_four_processes_are_alive(airflow_stack: LocalAirflow) -> None:
    assert set(airflow_stack.components) == set(COMPONENTS)
    assert all(component.alive() for component in airflow_stack.components.values())
    status, health = airflow_stack.api("GET", "/api/v2/monitor/health")
    assert status == 200
    assert {health[key]["status"] for key in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "healthy"
    }


def test_login_token_works(airflow_stack: LocalAirflow) -> None:
    passwords = airflow_stack.passwords()
    assert set(passwords) >= {"admin", "oncall"}
    token = airflow_stack.token("oncall", passwords["oncall"])
    status, body = airflow_stack.api("GET", "/api/v2/dags", token=token)
    assert status == 200
    assert "dags" in body


def test_wrong_password_is_401(airflow_stack: LocalAirflow) -> None:
    status, _ = airflow_stack.api(
        "POST", "/auth/token", {"username": "admin", "password": "not-the-password"}, auth=False
    )
    assert status == 401


def test_request_without_token_is_401(airflow_stack: LocalAirflow) -> None:
    status, _ = airflow_stack.api("GET", "/api/v2/dags", auth=False)
    assert status == 401


def test_trivial_dag_runs_to_success(airflow_stack: LocalAirflow) -> None:
    airflow_stack.wait_for_dag(DAG_ID, timeout=60)
    airflow_stack.unpause(DAG_ID)
    run_id = f"smoke__{uuid.uuid4().hex[:8]}"

    run = airflow_stack.trigger(DAG_ID, {"hello": "world"}, run_id=run_id)
    assert run["dag_run_id"] == run_id
    finished = airflow_stack.wait_for_run(DAG_ID, run_id, timeout=120)

    assert finished["state"] == "success"
    assert airflow_stack.task_states(DAG_ID, run_id) == {TASK_ID: "success"}
    # The same run id again is a conflict, not a second run.
    status, _ = airflow_stack.api(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "dag_run_id": run_id}
    )
    assert status == 409
    # Logs are read from local files: the stack runs without Airflow's log-server processes.
    status, log = airflow_stack.api(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/logs/1"
    )
    assert status == 200
    assert GREETING in str(log)


def test_home_holds_private_secrets_and_passwords(airflow_stack: LocalAirflow) -> None:
    for name in ("local_airflow_secrets.json", "simple_auth_manager_passwords.json.generated"):
        assert (airflow_stack.home / name).stat().st_mode & 0o077 == 0, name


def test_prepare_again_keeps_passwords_and_skips_migration(airflow_stack: LocalAirflow) -> None:
    passwords = airflow_stack.passwords()
    migrate_log = airflow_stack.logs_dir / "db-migrate.log"
    written = migrate_log.stat().st_mtime_ns

    airflow_stack.prepare()

    assert airflow_stack.passwords() == passwords
    assert migrate_log.stat().st_mtime_ns == written


def test_stop_leaves_no_process(airflow_stack: LocalAirflow) -> None:
    """Run last: stops the shared stack."""
    pids = airflow_stack.pids()
    assert len(pids) > len(COMPONENTS)  # the components fork workers and parsers

    airflow_stack.stop()

    assert airflow_stack.components == {}
    assert pids <= airflow_stack.stopped_pids
    assert [pid for pid in airflow_stack.stopped_pids if pid_alive(pid)] == []
