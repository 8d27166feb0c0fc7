"""Alert webhooks on real Airflow processes: an Alertmanager notification starts the run, repeats don't.

One stack (api-server, scheduler, dag-processor, triggerer) with `INCIDENT_WEBHOOK_TOKEN` set. The
notifications are posted over HTTP to the API server exactly as Alertmanager posts them, with the token
as a Bearer credential (Alertmanager's `http_config.authorization`).
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from include.store import IncidentStore
from scripts.local_airflow import LocalAirflow, poll

DAG_ID = "incident_response"
TOKEN = "e2e-webhook-token-" + uuid.uuid4().hex
FIXTURES = Path(__file__).resolve().parents[1] / "api" / "fixtures"
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def airflow_extra_env() -> dict[str, str]:
    """Give the stack a webhook token."""
    return {"INCIDENT_WEBHOOK_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def stack(airflow_stack: LocalAirflow) -> LocalAirflow:
    """Return the stack with incident_response parsed and unpaused."""
    airflow_stack.wait_for_dag(DAG_ID, timeout=120)
    airflow_stack.unpause(DAG_ID)
    return airflow_stack


@pytest.fixture(scope="module")
def store(airflow_stack: LocalAirflow) -> IncidentStore:
    """Return the stack's incident store (the embedded SQLite default under its AIRFLOW_HOME)."""
    return IncidentStore.from_url(f"sqlite:///{airflow_stack.home / 'incident_store.db'}")


def post_alerts(stack: LocalAirflow, source: str, body: Any, token: str | None = TOKEN) -> tuple[int, Any]:
    """POST a notification as the sender does: JSON, with the token as a Bearer credential."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{stack.api_url}/incident-response/api/alerts/{source}",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def alertmanager_group(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """Return an Alertmanager webhook body (version 4) around `alerts`, from the API tests' fixture."""
    body = json.loads((FIXTURES / "alertmanager_firing.json").read_text())
    body["status"] = status
    body["alerts"] = list(alerts)
    return body


def am_alert(device: str, error: str, severity: str, *, salt: str, status: str = "firing") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": error, "device_id": device, "severity": severity, "site": "plant-north"},
        "annotations": {"summary": f"{error} on {device}"},
        "startsAt": "2024-05-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-01T10:30:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph",
        "fingerprint": f"{device.lower()}-{salt}",
    }


def test_webhook_needs_the_token(stack: LocalAirflow):
    status, answer = post_alerts(stack, "alertmanager", alertmanager_group(), token=None)
    assert status == 401, answer
    status, answer = post_alerts(stack, "alertmanager", alertmanager_group(), token="wrong")
    assert status == 401, answer


def test_a_warning_alert_runs_to_success_and_repeats_are_deduplicated(stack: LocalAirflow, store):
    salt = uuid.uuid4().hex[:8]
    body = alertmanager_group(am_alert("SENSOR-T-88", "STUCK_READING", "warning", salt=salt))
    status, answer = post_alerts(stack, "alertmanager", body)
    assert status == 202, answer
    [item] = answer["incidents"]
    assert item["deduplicated"] is False and item["dag_paused"] is False
    run_id = item["dag_run_id"]

    # Alertmanager re-sends the group on every group_interval and retries failed deliveries.
    for _ in range(3):
        status, again = post_alerts(stack, "alertmanager", copy.deepcopy(body))
        assert status == 202 and again["incidents"][0] == {**item, "deduplicated": True, "dag_paused": None}

    run = stack.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    assert run["conf"]["device_id"] == "SENSOR-T-88" and run["conf"]["source"] == "alertmanager"
    states = stack.task_states(DAG_ID, run_id)
    assert states["create_ticket"] == "success" and states["page_oncall"] == "skipped"
    # Once the run is over, the same firing still maps to the same run: no second incident.
    status, after = post_alerts(stack, "alertmanager", body)
    assert status == 202 and after["incidents"][0]["deduplicated"] is True
    runs = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")[1]["dag_runs"]
    assert [r["dag_run_id"] for r in runs if r["conf"].get("fingerprint") == item["fingerprint"]] == [run_id]
    assert store.incidents.get(item["incident_id"]).state == "resolved"


def test_critical_alerts_wait_for_approval_then_approve_or_resolve(stack: LocalAirflow, store):
    salt = uuid.uuid4().hex[:8]
    approve_me = am_alert("PUMP-07B", "PRESSURE_SPIKE_DETECTED", "critical", salt=salt)
    resolve_me = am_alert("PUMP-12A", "PRESSURE_SPIKE_DETECTED", "page", salt=salt)
    status, answer = post_alerts(stack, "alertmanager", alertmanager_group(approve_me, resolve_me))
    assert status == 202, answer
    approved_run, resolved_run = (i["dag_run_id"] for i in answer["incidents"])

    def pending(run_id: str):
        stack.check_alive()
        deferred = stack.task_states(DAG_ID, run_id).get("wait_for_approval") == "deferred"
        records = store.approvals.find(run_id=run_id, state="pending")
        return records[0] if deferred and records else None

    record = poll(lambda: pending(approved_run), RUN_TIMEOUT, "the first run to wait for approval")
    status, decided = stack.api(
        "POST", f"/incident-response/api/approvals/{record.id}/decisions", {"decision": "approve"}
    )
    assert status == 200 and decided["state"] == "approved", decided

    other = poll(lambda: pending(resolved_run), RUN_TIMEOUT, "the second run to wait for approval")
    resolved = alertmanager_group(
        am_alert("PUMP-12A", "PRESSURE_SPIKE_DETECTED", "page", salt=salt, status="resolved"),
        status="resolved",
    )
    status, answer = post_alerts(stack, "alertmanager", resolved)
    assert status == 202, answer
    [item] = answer["incidents"]
    assert item["resolved"] is True and item["cancelled_approvals"] == [other.id]

    stack.wait_for_run(DAG_ID, approved_run, timeout=RUN_TIMEOUT)
    states = stack.task_states(DAG_ID, approved_run)
    assert states["execute_fix"] == "success" and states["escalate"] == "skipped"

    stack.wait_for_run(DAG_ID, resolved_run, timeout=RUN_TIMEOUT)
    states = stack.task_states(DAG_ID, resolved_run)
    assert states["execute_fix"] == "skipped" and states["escalate"] == "skipped"
    assert states["resolve_incident"] == "success" and states["final_report"] == "success"
    assert store.approvals.get(other.id).state == "cancelled"
