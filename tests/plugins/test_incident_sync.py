"""PagerDuty and Jira through the providers' hooks, against loopback servers that check the wire format."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from incident_ops import incident_sync, tasks
from incident_ops.hooks.errors import ServiceRejectedError, ServiceUnavailableError
from incident_ops.hooks.incident_store import get_store
from include import inventory, names, rules_analyzer
from include.models import Alert
from tests.fakes.jira_server import FakeJira
from tests.fakes.pagerduty_server import FakePagerDuty

DAG_ID = "incident_response"
ALERT = Alert(device_id="PUMP-07B", error="PRESSURE_SPIKE_DETECTED", metrics={"pressure_bar": 9.4})


class FakeTI:
    """Hands out the upstream XComs the tasks read."""

    def __init__(self, alert: Alert = ALERT) -> None:
        enrichment = inventory.lookup(alert.device_id)
        analysis = rules_analyzer.analyze(alert, enrichment)
        self.analysis = analysis
        self._xcoms = {
            names.INGEST: alert.to_xcom(),
            names.ENRICH: enrichment.to_xcom(),
            names.DIAGNOSE: analysis.to_xcom(),
        }

    def xcom_pull(self, task_ids: str):
        return self._xcoms.get(task_ids)


@pytest.fixture
def store(incident_store_url):
    return get_store()


@pytest.fixture
def pagerduty(monkeypatch):
    with FakePagerDuty() as server:
        monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT", server.connection_json())
        yield server


@pytest.fixture
def jira(monkeypatch):
    with FakeJira() as server:
        monkeypatch.setenv("AIRFLOW_CONN_JIRA_DEFAULT", server.connection_json())
        yield server


def _incident(store, ti: FakeTI, *, alert: Alert = ALERT):
    run = SimpleNamespace(
        dag_id=DAG_ID, run_id=f"manual__{uuid.uuid4().hex[:8]}", triggering_user_name="admin"
    )
    incident_id = store.incidents.open(
        dag_id=DAG_ID, run_id=run.run_id, incident_key=alert.incident_key, alert=alert.to_xcom()
    )
    store.incidents.update(incident_id, severity=ti.analysis.severity, analysis=ti.analysis.to_xcom())
    return run, incident_id


def test_the_page_triggers_pagerduty_once_even_when_the_task_retries(store, pagerduty):
    ti = FakeTI()
    run, incident_id = _incident(store, ti)
    tasks.page_oncall(ti=ti, dag_run=run)
    tasks.page_oncall(ti=ti, dag_run=run)  # a retry
    assert pagerduty.actions_for(incident_id) == ["trigger"]
    [event] = pagerduty.events
    assert event["routing_key"] == pagerduty.routing_key
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["source"] == "PUMP-07B"
    assert "PRESSURE_SPIKE_DETECTED" in event["payload"]["summary"]
    assert event["links"][0]["href"].endswith(f"/runs/{run.run_id}")


def test_a_failed_trigger_fails_the_task_for_its_retry(store, pagerduty):
    ti = FakeTI()
    run, incident_id = _incident(store, ti)
    pagerduty.fail_next(503)
    with pytest.raises(ServiceUnavailableError):
        tasks.page_oncall(ti=ti, dag_run=run)
    tasks.page_oncall(ti=ti, dag_run=run)
    assert pagerduty.actions_for(incident_id) == ["trigger"]


def test_a_wrong_routing_key_is_a_refusal(store, pagerduty, monkeypatch):
    wrong = json.loads(pagerduty.connection_json()) | {"password": "not-the-routing-key"}
    monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT", json.dumps(wrong))
    ti = FakeTI()
    run, _ = _incident(store, ti)
    with pytest.raises(ServiceRejectedError):
        tasks.page_oncall(ti=ti, dag_run=run)
    assert not pagerduty.events and len(pagerduty.requests) == 1


def test_without_pagerduty_nothing_is_sent_and_the_page_still_posts(store):
    ti = FakeTI()
    run, incident_id = _incident(store, ti)
    delivery = tasks.page_oncall(ti=ti, dag_run=run)
    assert delivery["posted"] is False  # no Slack either: kept in the outbox
    assert not [e for e in store.incidents.timeline(incident_id) if e.kind.startswith("pagerduty")]


def test_create_ticket_opens_one_jira_issue_and_stores_its_key(store, jira):
    alert = ALERT.model_copy(update={"error": "SENSOR_FAULT", "device_id": "SENSOR-T-88"})
    ti = FakeTI(alert)
    run, incident_id = _incident(store, ti, alert=alert)
    ticket = tasks.create_ticket(ti=ti, dag_run=run)
    assert ticket == {"mode": "jira", "ticket_id": "OPS-1"}
    tasks.create_ticket(ti=ti, dag_run=run)  # a retry
    assert [i["key"] for i in jira.issues] == ["OPS-1"]
    fields = jira.issues[0]["fields"]
    assert "SENSOR_FAULT" in fields["summary"] and "SENSOR-T-88" in fields["summary"]
    assert ti.analysis.diagnosis[:40] in fields["description"]
    assert f"/runs/{run.run_id}" in fields["description"]
    assert fields["labels"] == [incident_id]
    assert store.incidents.get(incident_id).ticket_id == "OPS-1"


def test_a_lost_create_answer_does_not_open_a_second_issue(store, jira):
    ti = FakeTI()
    run, incident_id = _incident(store, ti)
    jira.lose_next_create_answer()
    with pytest.raises(ServiceUnavailableError):
        incident_sync.jira_issue(store, incident_id, summary="s", description="d")
    assert incident_sync.jira_issue(store, incident_id, summary="s", description="d") == "OPS-1"
    assert len(jira.issues) == 1


def test_wrong_jira_credentials_are_a_refusal(store, jira, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_JIRA_DEFAULT", jira.connection_json(token="wrong"))
    ti = FakeTI()
    _, incident_id = _incident(store, ti)
    with pytest.raises(ServiceRejectedError):
        incident_sync.jira_issue(store, incident_id, summary="s", description="d")
    assert not jira.issues


def test_resolving_comments_on_the_issue_and_resolves_pagerduty_once(store, jira, pagerduty):
    ti = FakeTI()
    run, incident_id = _incident(store, ti)
    incident_sync.jira_issue(store, incident_id, summary="s", description="d")
    store.incidents.resolve(incident_id, outcome="fixed")
    incident_sync.incident_resolved(store, incident_id)
    incident_sync.incident_resolved(store, incident_id)
    assert [c["key"] for c in jira.comments] == ["OPS-1"]
    assert "fixed" in jira.comments[0]["body"]
    assert pagerduty.actions_for(incident_id) == ["resolve"]


def test_secrets_in_alert_text_are_redacted_before_they_leave(store, pagerduty, jira):
    alert = ALERT.model_copy(update={"device_id": "PUMP-07B", "error": "password=hunter2secret"})
    ti = FakeTI(alert)
    run, incident_id = _incident(store, ti, alert=alert)
    incident_sync.pagerduty_event(store, incident_id, incident_sync.TRIGGER)
    incident_sync.jira_issue(
        store, incident_id, summary=f"{alert.error} on x", description="token=abcdef123456"
    )
    assert "hunter2secret" not in str(pagerduty.events)
    assert "hunter2secret" not in str(jira.issues) and "abcdef123456" not in str(jira.issues)
