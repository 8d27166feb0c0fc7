"""The real thing: api-server, scheduler, dag-processor and triggerer run a critical incident to success."""

from __future__ import annotations

import time

from incident_ops import approval_lifecycle
from include.store import IncidentStore
from scripts.local_airflow import LocalAirflow, poll

DAG_ID = "incident_response"
CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}


def test_critical_incident_approved_while_deferred(airflow_stack: LocalAirflow):
    store = IncidentStore.from_url(f"sqlite:///{airflow_stack.home / 'incident_store.db'}")
    airflow_stack.wait_for_dag(DAG_ID)
    airflow_stack.unpause(DAG_ID)

    started = time.monotonic()
    run = airflow_stack.trigger(DAG_ID, CRITICAL, run_id="e2e-critical-approved")
    run_id = run["dag_run_id"]

    def deferred():
        airflow_stack.check_alive()
        return airflow_stack.task_states(DAG_ID, run_id).get("wait_for_approval") == "deferred"

    poll(deferred, 180, "wait_for_approval to defer")
    [record] = store.approvals.find(run_id=run_id)
    assert record.state == "pending"
    approval_lifecycle.decide(
        store, record.id, identity="admin", channel="api", decision="approve", role="admin"
    )

    airflow_stack.wait_for_run(DAG_ID, run_id, timeout=180)
    elapsed = time.monotonic() - started
    states = airflow_stack.task_states(DAG_ID, run_id)
    assert states["execute_fix"] == "success"
    assert states["escalate"] == "skipped"
    assert states["wait_for_approval"] == "success"
    assert states["final_report"] == "success"
    assert store.approvals.get(record.id).state == "approved"
    print(f"\ne2e: trigger to success {elapsed:.1f}s; Airflow ready after {airflow_stack.ready_after:.1f}s")
