"""execute_fix acts only on an approval the store holds for exactly this incident, action and target."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from incident_ops import tasks
from incident_ops.hooks.incident_store import get_store
from include import names
from include.models import Alert
from include.store import ApprovalState
from tests.plugins.test_incident_sync import ALERT, DAG_ID, FakeTI


@pytest.fixture
def store(incident_store_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_APPROVERS", json.dumps({"default": ["alice", "bob", "carol"]}))
    return get_store()


def start(store) -> tuple[FakeTI, SimpleNamespace, str]:
    ti = FakeTI()
    run = SimpleNamespace(
        dag_id=DAG_ID, run_id=f"manual__{uuid.uuid4().hex[:8]}", triggering_user_name="admin"
    )
    incident_id = store.incidents.open(
        dag_id=DAG_ID, run_id=run.run_id, incident_key=ALERT.incident_key, alert=ALERT.to_xcom()
    )
    store.incidents.update(incident_id, severity="critical", analysis=ti.analysis.to_xcom())
    return ti, run, incident_id


def approve(store, ti: FakeTI, run: SimpleNamespace) -> str:
    approval_id = tasks.request_approval(ti=ti, dag_run=run)
    for who in ("alice", "bob", "carol"):
        if store.approvals.get(approval_id).state == ApprovalState.PENDING:
            store.approvals.cast_vote(
                approval_id, identity=who, channel="api", decision="approve", role="user"
            )
    assert store.approvals.get(approval_id).state == ApprovalState.APPROVED
    return approval_id


def refused(store, ti: FakeTI, run: SimpleNamespace, incident_id: str) -> str:
    with pytest.raises(AirflowFailException, match="the fix was not run"):
        tasks.execute_fix(ti=ti, dag_run=run)
    assert store.actions.for_incident(incident_id) == []  # acted on nothing
    kinds = [e.kind for e in store.incidents.timeline(incident_id)]
    assert "fix_refused" in kinds and "escalated" in kinds  # on the timeline, and escalated
    [event] = [e for e in store.incidents.timeline(incident_id) if e.kind == "fix_refused"]
    return event.detail["reason"]


def test_an_approved_record_for_exactly_this_fix_lets_it_run(store):
    ti, run, incident_id = start(store)
    approve(store, ti, run)
    assert tasks.execute_fix(ti=ti, dag_run=run)["state"] == "done"
    assert [a["action"] for a in store.actions.for_incident(incident_id)] == [ti.analysis.recommended_action]


def test_without_any_record_a_fix_the_policy_gates_is_refused(store):
    # As if someone marked approval_needed's branch or the sensor's XCom by hand.
    ti, run, incident_id = start(store)
    ti._xcoms[names.WAIT_FOR_APPROVAL] = {
        "approval_id": "apr-x",
        "state": "approved",
        "decided_by": ["mallory"],
    }
    assert "no approval record" in refused(store, ti, run, incident_id)


@pytest.mark.parametrize("state", ["pending", "rejected", "expired", "cancelled"])
def test_a_record_that_is_not_approved_is_refused_whatever_the_xcom_says(store, state):
    ti, run, incident_id = start(store)
    approval_id = tasks.request_approval(ti=ti, dag_run=run)
    if state == "rejected":
        store.approvals.cast_vote(
            approval_id, identity="alice", channel="api", decision="reject", role="user"
        )
    elif state != "pending":
        store.approvals.close(approval_id, state=ApprovalState(state))
    ti._xcoms[names.WAIT_FOR_APPROVAL] = {
        "approval_id": approval_id,
        "state": "approved",
        "decided_by": ["x"],
    }
    assert state in refused(store, ti, run, incident_id)


@pytest.mark.parametrize(
    "changed",
    [
        {"device_id": "PUMP-99"},  # another target
        {"dry_run": True},  # other parameters
    ],
)
def test_an_approval_is_bound_to_the_target_and_parameters_it_approved(store, changed):
    ti, run, incident_id = start(store)
    approve(store, ti, run)
    ti._xcoms[names.INGEST] = Alert.model_validate({**ALERT.to_xcom(), **changed}).to_xcom()  # XCom edited
    assert "differ" in refused(store, ti, run, incident_id)


def test_an_approval_of_another_action_does_not_cover_this_one(store):
    ti, run, incident_id = start(store)
    approve(store, ti, run)
    other = ti.analysis.model_copy(update={"recommended_action": "reduce_load"})
    ti._xcoms[names.DIAGNOSE] = other.to_xcom()
    reason = refused(store, ti, run, incident_id)
    assert "no approval record" in reason or "another" in reason
