"""Every business path of `incident_response`, run for real with dag.test() on a migrated Airflow DB."""

from __future__ import annotations

import pytest
from airflow.sdk.definitions.param import ParamValidationError

from incident_ops import approval_lifecycle

pytestmark = pytest.mark.scenario

CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}
CRITICAL_PATH = [
    "ingest",
    "enrich",
    "ai_summarize",
    "ai_diagnose",
    "analyze_severity",
    "page_oncall",
    "automated_containment",
    "approval_needed",
    "resolve_incident",
    "final_report",
]
WARNING_ONLY = ["create_ticket", "diagnostic_report"]
APPROVAL_PATH = ["request_approval", "wait_for_approval", "approval_decision"]


def _states(outcome, task_ids):
    return {t: outcome.tasks[t] for t in task_ids}


def _all(task_ids, state):
    return dict.fromkeys(task_ids, state)


def _vote(decision, identity="admin"):
    def vote(store, approval_id):
        approval_lifecycle.decide(
            store, approval_id, identity=identity, channel="web", decision=decision, role="admin"
        )

    return vote


def test_critical_approved_runs_the_fix(run_incident):
    outcome = run_incident(CRITICAL, decide=_vote("approve"))

    assert not outcome.decider_errors
    assert outcome.state == "success"
    assert _states(outcome, CRITICAL_PATH + APPROVAL_PATH + ["execute_fix"]) == _all(
        CRITICAL_PATH + APPROVAL_PATH + ["execute_fix"], "success"
    )
    assert _states(outcome, ["escalate", "log_only", *WARNING_ONLY]) == _all(
        ["escalate", "log_only", *WARNING_ONLY], "skipped"
    )
    [record] = outcome.approvals()
    assert (record.state, record.action, record.risk) == ("approved", "isolate_pump", "high")
    assert [(v.identity, v.channel, v.decision, v.accepted) for v in record.votes] == [
        ("admin", "web", "approve", True)
    ]
    incident = outcome.incident
    assert (incident.state, incident.outcome, incident.severity) == ("resolved", "fixed", "critical")
    actions = {a["action"]: a for a in outcome.store.actions.for_incident(incident.id)}
    assert set(actions) == {"open_bypass_valve", "isolate_pump"}  # containment, then the approved fix
    assert all(a["state"] == "done" and a["result"]["mode"] == "simulated" for a in actions.values())
    # No Slack connection: every message is kept in the outbox, none pretends to be sent.
    messages = outcome.store.outbox.for_incident(incident.id)
    assert [m["key"].removeprefix(f"{outcome.run_id}:") for m in messages] == [
        "page",
        f"approval:{record.id}",
        "fix",
        "final_report",
    ]
    assert {m["state"] for m in messages} == {"pending"}


def test_critical_rejected_escalates_and_still_succeeds(run_incident):
    outcome = run_incident(CRITICAL, decide=_vote("reject"))

    assert not outcome.decider_errors
    assert outcome.state == "success"
    assert _states(outcome, APPROVAL_PATH + ["escalate"]) == _all(APPROVAL_PATH + ["escalate"], "success")
    assert outcome.tasks["execute_fix"] == "skipped"
    [record] = outcome.approvals()
    assert record.state == "rejected"
    incident = outcome.incident
    assert incident.outcome == "escalated_rejected"
    assert incident.ticket_id == f"LOCAL-{incident.id}"
    assert [a["action"] for a in outcome.store.actions.for_incident(incident.id)] == ["open_bypass_valve"]


def test_critical_expired_escalates_without_failing(run_incident, monkeypatch):
    monkeypatch.setenv("INCIDENT_APPROVAL_DEADLINE_SECONDS", "2")
    outcome = run_incident(CRITICAL)

    assert outcome.state == "success"
    assert _states(outcome, APPROVAL_PATH + ["escalate"]) == _all(APPROVAL_PATH + ["escalate"], "success")
    assert outcome.tasks["execute_fix"] == "skipped"
    [record] = outcome.approvals()
    assert record.state == "expired" and record.votes == ()
    assert outcome.incident.outcome == "escalated_expired"
    keys = [
        m["key"].removeprefix(f"{outcome.run_id}:")
        for m in outcome.store.outbox.for_incident(outcome.incident.id)
    ]
    assert keys == ["page", f"approval:{record.id}", f"reminder:{record.id}", "escalate", "final_report"]


def test_critical_without_approval_runs_the_fix_directly(run_incident):
    # The sender says critical; the sensor runbook's action (recalibrate) is low risk and the rules
    # are confident, so nobody needs to approve it.
    conf = {"device_id": "SENSOR-T-88", "error": "SENSOR_FAULT", "severity": "critical"}
    outcome = run_incident(conf)

    assert outcome.state == "success"
    assert outcome.tasks["approval_needed"] == "success"
    assert _states(outcome, APPROVAL_PATH + ["escalate"]) == _all(APPROVAL_PATH + ["escalate"], "skipped")
    assert outcome.tasks["execute_fix"] == "success"
    assert outcome.approvals() == []
    assert outcome.incident.outcome == "fixed"


def test_warning_opens_a_ticket_and_reports(run_incident):
    outcome = run_incident({"device_id": "SENSOR-T-88", "error": "STUCK_READING"})

    assert outcome.state == "success"
    assert _states(outcome, WARNING_ONLY + ["resolve_incident", "final_report"]) == _all(
        WARNING_ONLY + ["resolve_incident", "final_report"], "success"
    )
    skipped = [
        "page_oncall",
        "automated_containment",
        "approval_needed",
        *APPROVAL_PATH,
        "execute_fix",
        "escalate",
        "log_only",
    ]
    assert _states(outcome, skipped) == _all(skipped, "skipped")
    incident = outcome.incident
    assert (incident.severity, incident.outcome) == ("warning", "ticketed")
    assert [
        m["key"].removeprefix(f"{outcome.run_id}:") for m in outcome.store.outbox.for_incident(incident.id)
    ] == [
        "ticket",
        "diagnostics",
        "final_report",
    ]


def test_info_is_only_logged(run_incident):
    outcome = run_incident({"device_id": "MOTOR-21", "error": "MAINTENANCE_DUE"})

    assert outcome.state == "success"
    assert outcome.tasks["log_only"] == "success"
    skipped = [
        "page_oncall",
        "automated_containment",
        "create_ticket",
        "diagnostic_report",
        "execute_fix",
        "escalate",
        *APPROVAL_PATH,
        "approval_needed",
    ]
    assert _states(outcome, skipped) == _all(skipped, "skipped")
    assert outcome.incident.outcome == "logged"
    assert outcome.store.actions.for_incident(outcome.incident.id) == []


def test_invalid_conf_is_refused_before_any_task(run_incident):
    with pytest.raises(ParamValidationError, match="device_id"):
        run_incident({"device_id": "", "error": "PRESSURE_SPIKE_DETECTED"})
