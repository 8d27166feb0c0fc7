"""Everything the run command started is SIGKILLed while approvals wait; started again, nothing is lost.

The stack is killed the way a crash or the OOM killer would do it: every Airflow process and what it
forked, at once, with no chance to clean up. The embedded PostgreSQL runs on, as it does after a
killed `make run`. A new LocalAirflow on the same home (what the run command does) must take the
running database and the waiting runs over; the decisions made after the restart finish every run on
its branch, and no fix runs twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from include.names import DAG_ID
from include.store import IncidentStore, incident_id_for
from scripts.local_airflow import LocalAirflow, pid_alive, postgres
from tests.e2e.conftest import READY_TIMEOUT, REPO
from tests.e2e.faults_support import (
    CRITICAL,
    RUN_TIMEOUT,
    assert_nothing_twice,
    decide,
    finished_all,
    stack_env,
    wait_all_deferred,
)
from tests.e2e.test_slack_approval_e2e import only_record
from tests.fakes.device_api import FakeDeviceApi
from tests.fakes.slack_server import FakeSlackServer

# A stack's first start plus a retried run outlasts the suite's 300 s per test on a loaded machine.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlackServer]:
    with FakeSlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def device() -> Iterator[FakeDeviceApi]:
    with FakeDeviceApi() as api:
        yield api


@pytest.fixture(scope="module")
def airflow_extra_env(slack: FakeSlackServer, device: FakeDeviceApi) -> dict[str, str]:
    return stack_env(slack, device=device)


def test_everything_killed_while_approvals_wait_then_started_again_loses_nothing(
    airflow_stack: LocalAirflow, slack: FakeSlackServer, device: FakeDeviceApi
) -> None:
    stack = airflow_stack
    stack.wait_for_dag(DAG_ID, timeout=RUN_TIMEOUT, fail_on_import_error=True)
    stack.unpause(DAG_ID)
    store = IncidentStore.from_url(f"sqlite:///{stack.home / 'incident_store.db'}")
    decisions = {f"fault-killall-{d}-{uuid.uuid4().hex[:6]}": d for d in ("approve", "reject", "approve")}
    for run_id in decisions:
        stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    wait_all_deferred(stack, list(decisions))
    records = {run_id: only_record(store, run_id) for run_id in decisions}

    killed = stack.pids()
    database = postgres.server_pid(stack.postgres_dir) if stack.uses_embedded_postgres else None
    stack.kill()
    assert killed and not [pid for pid in killed if pid_alive(pid)]

    again = LocalAirflow(
        stack.home, stack.api_port, repo=REPO, extra_env=stack.extra_env, inherit_airflow_env=False
    )
    try:
        again.prepare()
        again.start()
        again.wait_ready(READY_TIMEOUT)
        again.login("admin")
        if database is not None:
            assert postgres.server_pid(again.postgres_dir) == database, "the running database was not reused"
        for run_id, decision in decisions.items():
            assert store.approvals.get(records[run_id].id).state == "pending"
            decide(again, records[run_id].id, decision)
        finished_all(again, decisions)
    except BaseException:
        print(f"Airflow after the restart; process logs:\n{again.log_tails()}")
        raise
    finally:
        again.stop()
        postgres.stop(stack.postgres_dir)  # also when the restart failed before taking the database over

    assert_nothing_twice(store, slack, list(decisions), device)
    for run_id, decision in decisions.items():
        fixes = [
            a
            for a in store.actions.for_incident(incident_id_for(DAG_ID, run_id))
            if a["result"]["purpose"] == "fix"
        ]
        assert len(fixes) == (1 if decision == "approve" else 0), fixes
