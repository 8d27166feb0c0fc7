"""A run whose incident was resolved by hand before its approval or fix ends without the fix."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from incident_ops import incident_lifecycle, tasks
from incident_ops.hooks.incident_store import get_store
from include.store import incident_id_for
from tests.fakes.jira_server import FakeJira
from tests.plugins.test_incident_sync import ALERT, DAG_ID, FakeTI


@pytest.fixture
def store(incident_store_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_RESPONDERS", json.dumps(["alice"]))
    return get_store()


def _run(store, run_id: str, ti: FakeTI):
    dag_run = SimpleNamespace(dag_id=DAG_ID, run_id=run_id, triggering_user_name=None)
    incident_id = store.incidents.open(
        dag_id=DAG_ID, run_id=run_id, incident_key=ALERT.incident_key, alert=ALERT.to_xcom()
    )
    store.incidents.update(incident_id, severity="critical", analysis=ti.analysis.to_xcom())
    return dag_run, incident_id


def test_resolved_before_the_approval_was_requested_cancels_the_new_record(store):
    ti = FakeTI()
    dag_run, incident_id = _run(store, "run-early", ti)
    incident_lifecycle.act(store, incident_id, "resolve", identity="alice", channel="api", role="user")
    approval_id = tasks.request_approval(ti=ti, dag_run=dag_run)
    assert store.approvals.get(approval_id).state == "cancelled"


def test_resolved_before_the_fix_skips_it(store):
    ti = FakeTI()
    dag_run, incident_id = _run(store, "run-fix", ti)
    incident_lifecycle.act(store, incident_id, "resolve", identity="alice", channel="api", role="user")
    with pytest.raises(AirflowSkipException):
        tasks.execute_fix(ti=ti, dag_run=dag_run)
    assert store.actions.for_incident(incident_id) == []


def test_the_fix_runs_while_the_incident_is_only_acknowledged(store):
    ti = FakeTI()
    dag_run, incident_id = _run(store, "run-acked", ti)
    incident_lifecycle.act(store, incident_id, "acknowledge", identity="alice", channel="api", role="user")
    approval_id = tasks.request_approval(ti=ti, dag_run=dag_run)  # the fix needs its approval record
    store.approvals.cast_vote(approval_id, identity="alice", channel="api", decision="approve", role="user")
    assert tasks.execute_fix(ti=ti, dag_run=dag_run)["state"] == "done"


def test_the_run_closing_an_incident_resolved_by_hand_keeps_who_resolved_it(store):
    ti = FakeTI()
    dag_run, incident_id = _run(store, "run-close", ti)
    incident_lifecycle.act(store, incident_id, "resolve", identity="alice", channel="api", role="user")
    tasks.resolve_incident(ti=ti, dag_run=dag_run)
    incident = store.incidents.get(incident_id_for(DAG_ID, "run-close"))
    assert (incident.resolved_by, incident.outcome) == ("alice", "resolved_by_hand")
    assert [e.kind for e in store.incidents.timeline(incident_id)].count("resolved") == 1


def test_escalating_by_hand_opens_the_jira_issue_the_escalate_task_then_reuses(store, monkeypatch):
    with FakeJira() as jira:
        monkeypatch.setenv("AIRFLOW_CONN_JIRA_DEFAULT", jira.connection_json())
        ti = FakeTI()
        dag_run, incident_id = _run(store, "run-escalate", ti)
        document = incident_lifecycle.act(
            store, incident_id, "escalate", identity="alice", channel="api", role="user"
        )
        assert document["ticket_id"] == "OPS-1"
        fields = jira.issues[0]["fields"]
        assert fields["summary"] == f"Escalated: {ALERT.error} on {ALERT.device_id}"
        assert ti.analysis.diagnosis[:30] in fields["description"] and "run-escalate" in fields["description"]
        # The approval is then rejected: the escalate task finds the same issue.
        ti._xcoms["wait_for_approval"] = {"approval_id": "apr-x", "state": "rejected", "decided_by": ["bob"]}
        assert tasks.escalate(ti=ti, dag_run=dag_run)["ticket_id"] == "OPS-1"
        assert len(jira.issues) == 1
        incident_lifecycle.act(store, incident_id, "resolve", identity="alice", channel="api", role="user")
        assert [c["key"] for c in jira.comments] == ["OPS-1"] and "alice" in jira.comments[0]["body"]
