"""A decision ends the deferred `wait_for_approval` from the API server, without waiting for the triggerer.

The runs and their task instances are real rows of Airflow's metadata DB, created through the REST
API; the sensor's deferral is written the way Airflow writes it (a Trigger row from our
ApprovalTrigger, the task instance pointing at it).
"""

from __future__ import annotations

import uuid

import pytest

from tests.api.fixtures import sync_dags_to_db
from tests.api.helpers import PREFIX, bearer, defer_sensor, make_record, sensor

DAG_ID = "incident_response"
ALERT = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api"}


@pytest.fixture(scope="module", autouse=True)
def dags_in_db(airflow_app):
    sync_dags_to_db()


def new_run(client, tokens) -> str:
    run_id = f"resume-{uuid.uuid4().hex[:10]}"
    response = client.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": None, "conf": ALERT},
        headers=bearer(tokens["admin"]),
    )
    assert response.status_code == 200, response.text
    return run_id


def decide(client, token: str, record_id: str, decision: str = "approve"):
    return client.post(
        f"{PREFIX}/api/approvals/{record_id}/decisions", json={"decision": decision}, headers=bearer(token)
    )


@pytest.mark.parametrize(("decision", "state"), [("approve", "approved"), ("reject", "rejected")])
def test_a_decision_ends_the_deferred_sensor_with_its_outcome(client, store, tokens, decision, state):
    run_id = new_run(client, tokens)
    record = make_record(store, run_id=run_id)
    defer_sensor(run_id, record.id)

    response = decide(client, tokens["alice"], record.id, decision)

    assert response.status_code == 200, response.text
    ended = sensor(run_id)
    assert ended["state"] == "success"
    assert ended["trigger_id"] is None
    assert ended["xcom"] == {"approval_id": record.id, "state": state, "decided_by": ["alice"]}


def test_only_the_sensor_waiting_on_that_record_ends(client, store, tokens):
    decided_run, other_run = new_run(client, tokens), new_run(client, tokens)
    decided, other = make_record(store, run_id=decided_run), make_record(store, run_id=other_run)
    defer_sensor(decided_run, decided.id)
    defer_sensor(other_run, other.id)

    assert decide(client, tokens["alice"], decided.id).status_code == 200

    assert sensor(decided_run)["state"] == "success"
    other = sensor(other_run)
    assert other["state"] == "deferred" and other["trigger_id"] is not None and other["xcom"] is None


def test_a_sensor_reading_another_store_is_left_to_its_trigger(client, store, tokens):
    run_id = new_run(client, tokens)
    record = make_record(store, run_id=run_id)
    defer_sensor(run_id, record.id, store_conn_id="some_other_store")

    assert decide(client, tokens["alice"], record.id).status_code == 200

    assert sensor(run_id)["state"] == "deferred"


def test_votes_that_do_not_decide_leave_the_sensor_waiting(client, store, tokens):
    run_id = new_run(client, tokens)
    record = make_record(store, run_id=run_id, quorum=2)
    defer_sensor(run_id, record.id)

    assert decide(client, tokens["alice"], record.id).status_code == 200  # 1 of 2
    assert decide(client, tokens["victor"], record.id).status_code == 403  # not an approver
    assert decide(client, tokens["alice"], record.id).status_code == 409  # a repeat

    assert sensor(run_id)["state"] == "deferred"
    assert decide(client, tokens["bob"], record.id).status_code == 200  # 2 of 2
    assert sensor(run_id)["xcom"] == {
        "approval_id": record.id,
        "state": "approved",
        "decided_by": ["alice", "bob"],
    }


def test_a_decision_before_the_sensor_defers_changes_no_task(client, store, tokens):
    run_id = new_run(client, tokens)
    record = make_record(store, run_id=run_id)

    assert decide(client, tokens["alice"], record.id).status_code == 200

    # Not deferred yet: the sensor reads the decided record itself when it starts.
    assert sensor(run_id) == {"state": None, "trigger_id": None, "xcom": None}
    assert store.approvals.get(record.id).state == "approved"


def test_a_metadata_db_failure_keeps_the_decision(client, store, tokens, monkeypatch, caplog):
    import airflow.models.trigger
    from sqlalchemy.exc import OperationalError

    run_id = new_run(client, tokens)
    record = make_record(store, run_id=run_id)
    defer_sensor(run_id, record.id)

    def database_gone(*args, **kwargs):
        raise OperationalError(
            "UPDATE task_instance ...", {}, ConnectionError("server closed the connection")
        )

    with monkeypatch.context() as patch:
        patch.setattr(airflow.models.trigger, "handle_event_submit", database_gone)
        response = decide(client, tokens["alice"], record.id)

    # The vote counts and is answered; the trigger, still polling, ends the wait instead.
    assert response.status_code == 200 and response.json()["state"] == "approved"
    assert store.approvals.get(record.id).state == "approved"
    assert sensor(run_id)["state"] == "deferred"
    assert f"Could not end the wait on approval {record.id}" in caplog.text
