"""request_approval, called as the task runner calls it: the record it creates and its Slack-free fallback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from incident_ops import tasks
from incident_ops.hooks.incident_store import get_store
from include import inventory, names, rules_analyzer
from include.models import Alert
from include.store import incident_id_for

DAG_ID = "incident_response"
ALERT = Alert(device_id="PUMP-07B", error="PRESSURE_SPIKE_DETECTED", metrics={"pressure_bar": 9.4})


class FakeTI:
    """Hands out the upstream XComs request_approval reads."""

    def __init__(self) -> None:
        enrichment = inventory.lookup(ALERT.device_id)
        analysis = rules_analyzer.analyze(ALERT, enrichment)
        self._xcoms = {
            names.INGEST: ALERT.to_xcom(),
            names.ENRICH: enrichment.to_xcom(),
            names.DIAGNOSE: analysis.to_xcom(),
        }

    def xcom_pull(self, task_ids: str):
        return self._xcoms[task_ids]


@pytest.fixture
def store(incident_store_url):
    return get_store()


def _open(store, run_id: str) -> None:
    store.incidents.open(dag_id=DAG_ID, run_id=run_id, incident_key=ALERT.incident_key, alert=ALERT.to_xcom())


def test_creates_a_pending_record_and_queues_the_request(store):
    dag_run = SimpleNamespace(dag_id=DAG_ID, run_id="run-1", triggering_user_name="admin")
    _open(store, dag_run.run_id)

    approval_id = tasks.request_approval(ti=FakeTI(), dag_run=dag_run)

    record = store.approvals.get(approval_id)
    assert (record.state, record.action, record.risk, record.requested_by) == (
        "pending",
        "isolate_pump",
        "high",
        "admin",
    )
    [message] = store.outbox.for_incident(incident_id_for(DAG_ID, "run-1"))
    assert message["key"] == f"run-1:approval:{approval_id}" and message["state"] == "pending"
    # A retry of the task finds the same record and the same queued message.
    assert tasks.request_approval(ti=FakeTI(), dag_run=dag_run) == approval_id
    assert len(store.outbox.for_incident(incident_id_for(DAG_ID, "run-1"))) == 1


def test_alert_resolved_before_the_record_existed_cancels_it(store):
    dag_run = SimpleNamespace(dag_id=DAG_ID, run_id="alert__alertmanager__abc", triggering_user_name=None)
    _open(store, dag_run.run_id)
    store.intake.claim_alert_run(
        run_id=dag_run.run_id,
        dag_id=DAG_ID,
        incident_key=ALERT.incident_key,
        source="alertmanager",
        fingerprint="abc",
        episode="2026-11-26T00:00:00Z",
    )
    assert store.intake.resolve_alert_run(dag_run.run_id, source="alertmanager")

    approval_id = tasks.request_approval(ti=FakeTI(), dag_run=dag_run)

    assert store.approvals.get(approval_id).state == "cancelled"
