"""The real `incident_response` DAG with the fake LLM behind `llm_default`: good and bad model behaviour."""

# The fixtures are imported into this module (not conftest.py); their use as parameters is not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
import re

import pytest

from incident_ops import approval_lifecycle
from tests.fakes.llm_fixtures import llm_connection, llm_server  # noqa: F401
from tests.fakes.llm_server import Reply

pytestmark = pytest.mark.scenario

CRITICAL = {
    "device_id": "PUMP-07B",
    "error": "PRESSURE_SPIKE_DETECTED",
    "metrics": {"pressure_bar": 9.4},
    "message": "Spike reported by ops@example.org with token=tok_abcdef123456",
}
# The sensor runbook's action is low risk and the rules are confident: no approval unless the analysis is weak
SENSOR_CRITICAL = {"device_id": "SENSOR-T-88", "error": "SENSOR_FAULT", "severity": "critical"}
APPROVAL_PATH = ["request_approval", "wait_for_approval", "approval_decision"]
LLM_SUMMARY = "Pump PUMP-07B at Plant North reports 9.4 bar, above its 8 bar limit."
LLM_REPORT_TAIL = "The bypass valve was opened without a human; pressure relieved (model-written report)."


def _approve(store, approval_id):
    approval_lifecycle.decide(
        store, approval_id, identity="admin", channel="web", decision="approve", role="admin"
    )


def _diagnosis(action, confidence=0.9, severity="critical"):
    return Reply.json(
        {
            "severity": severity,
            "diagnosis": "A closed downstream valve; relieve pressure.",
            "recommended_action": action,
            "confidence": confidence,
        }
    )


def _report():
    """Answer the report call with the incident id and outcome read from the plain report in the prompt."""

    def make(request):
        head = re.search(r"Incident (inc-[0-9a-f]+): .* - (\S+)", request.prompt)
        return Reply.json({"report": f"Incident {head[1]}: {head[2]}. {LLM_REPORT_TAIL}"})

    return Reply("dynamic", make=make)


def _final_report(outcome):
    [message] = [
        m
        for m in outcome.store.outbox.for_incident(outcome.incident.id)
        if m["key"].endswith(":final_report")
    ]
    return message


def test_a_good_model_answers_end_to_end(run_incident, llm_server, llm_connection):
    llm_server.enqueue(Reply.json({"summary": LLM_SUMMARY}), _diagnosis("open_bypass_valve"), _report())

    outcome = run_incident(CRITICAL, decide=_approve)

    assert not outcome.decider_errors
    assert outcome.state == "success"
    analysis = outcome.incident.analysis
    assert (analysis["analyzer"], analysis["recommended_action"], analysis["confidence"]) == (
        "llm",
        "open_bypass_valve",
        0.9,
    )
    assert analysis["summary"] == LLM_SUMMARY
    # Low risk and confident, but not the rules' choice: it runs once a human has approved it.
    [record] = outcome.approvals()
    assert record.reasons == ["the model proposed open_bypass_valve instead of isolate_pump"]
    assert outcome.tasks["execute_fix"] == "success"
    assert all(outcome.tasks[t] == "success" for t in APPROVAL_PATH)
    assert outcome.incident.outcome == "fixed"
    actions = [a["action"] for a in outcome.store.actions.for_incident(outcome.incident.id)]
    assert actions == ["open_bypass_valve"]  # containment and fix are the same action: it runs once
    # The incident keeps how each model call went: analyser, model, latency, tokens; never the prompt.
    calls = [e.detail for e in outcome.store.incidents.timeline(outcome.incident.id) if e.kind == "llm_call"]
    assert [(c["step"], c["analyzer"], c["fallback_reason"]) for c in calls] == [
        ("summarize", "llm", None),
        ("diagnose", "llm", None),
        ("report", "llm", None),
    ]
    assert all(c["model"] and c["latency_ms"] >= 0 and c["usage"] for c in calls)
    assert "prompt" not in str([sorted(c) for c in calls]).replace("prompt_version", "").replace(
        "prompt_sha256", ""
    )
    summarize, diagnose, report = llm_server.requests
    assert summarize.schema_name == "incident_summary" and diagnose.action_enum == [
        "isolate_pump",
        "open_bypass_valve",
        "reduce_load",
    ]
    # The final report is the model's; the notification text stays the plain report's first line.
    assert report.schema_name == "incident_report" and "Time to acknowledge" in report.prompt
    message = _final_report(outcome)
    incident_id = outcome.incident.id
    assert message["text"] == f"Incident {incident_id}: PRESSURE_SPIKE_DETECTED on PUMP-07B - fixed"
    body = message["blocks"][0]["text"]["text"]
    assert f"Incident {incident_id}: fixed." in body and LLM_REPORT_TAIL in body
    assert "Time to acknowledge" not in body
    sent = json.dumps([r.body for r in llm_server.requests])
    assert "ops@example.org" not in sent and "tok_abcdef123456" not in sent


def _reject(store, approval_id):
    approval_lifecycle.decide(
        store, approval_id, identity="admin", channel="web", decision="reject", role="admin"
    )


def test_a_model_cannot_downgrade_the_action_to_skip_the_human(run_incident, llm_server, llm_connection):
    # A hostile or mistaken answer: the safe-looking action, with full confidence, for a 9.4 bar spike.
    llm_server.enqueue(Reply.json({"summary": LLM_SUMMARY}), _diagnosis("reduce_load", confidence=1.0))

    outcome = run_incident(CRITICAL, decide=_reject)

    assert not outcome.decider_errors
    assert outcome.state == "success"
    [record] = outcome.approvals()
    assert record.action == "reduce_load" and record.state == "rejected"
    assert "the model proposed reduce_load instead of isolate_pump" in record.reasons
    assert outcome.tasks["wait_for_approval"] == "success" and outcome.tasks["escalate"] == "success"
    assert outcome.tasks["execute_fix"] == "skipped"
    actions = [a["action"] for a in outcome.store.actions.for_incident(outcome.incident.id)]
    assert "reduce_load" not in actions  # only the runbook's containment ran
    # The Slack request says why a human is asked.
    [request] = [
        m for m in outcome.store.outbox.for_incident(outcome.incident.id) if ":approval:" in m["key"]
    ]
    assert "the model proposed reduce_load instead of isolate_pump" in json.dumps(request["blocks"])


def test_a_model_cannot_lower_a_warning_to_drop_the_ticket(run_incident, llm_server, llm_connection):
    llm_server.enqueue(
        Reply.json({"summary": "Stuck sensor."}),
        _diagnosis("reset_sensor", confidence=0.9, severity="info"),
    )

    outcome = run_incident({"device_id": "SENSOR-T-88", "error": "STUCK_READING"})

    assert outcome.state == "success"
    assert outcome.incident.analysis["severity"] == "warning"
    assert outcome.tasks["create_ticket"] == "success" and outcome.tasks["log_only"] == "skipped"


def test_a_risky_model_choice_goes_through_approval(run_incident, llm_server, llm_connection):
    llm_server.enqueue(Reply.json({"summary": LLM_SUMMARY}), _diagnosis("isolate_pump", confidence=0.95))

    outcome = run_incident(CRITICAL, decide=_approve)

    assert not outcome.decider_errors
    assert outcome.state == "success"
    assert outcome.incident.analysis["analyzer"] == "llm"
    [record] = outcome.approvals()
    assert (record.state, record.action, record.risk) == ("approved", "isolate_pump", "high")
    assert outcome.tasks["execute_fix"] == "success"


def test_garbage_answers_fall_back_to_the_rules_and_force_approval(run_incident, llm_server, llm_connection):
    llm_server.default = Reply.text("As an AI model I think the sensor is sad. {not json")

    outcome = run_incident(SENSOR_CRITICAL, decide=_approve)

    assert not outcome.decider_errors
    assert outcome.state == "success"
    analysis = outcome.incident.analysis
    assert (analysis["analyzer"], analysis["confidence"]) == ("rules", 0.5)
    assert analysis["recommended_action"] == "recalibrate_sensor"
    # Without the model's failure this alert runs its fix directly (see test_incident_paths.py).
    [record] = outcome.approvals()
    assert record.state == "approved" and any("confidence" in r for r in record.reasons)
    assert outcome.tasks["execute_fix"] == "success"
    assert len(llm_server.requests) == 6  # two attempts for each of summarize, diagnose and report
    assert all(state in ("success", "skipped") for state in outcome.tasks.values())
    # The final report falls back to the plain one, and the record says why.
    assert outcome.tasks["final_report"] == "success"
    body = _final_report(outcome)["blocks"][0]["text"]["text"]
    assert "Timeline:" in body and "Time to acknowledge" in body and "sensor is sad" not in body
    calls = [e.detail for e in outcome.store.incidents.timeline(outcome.incident.id) if e.kind == "llm_call"]
    assert [(c["step"], c["analyzer"], c["fallback_reason"]) for c in calls][-1] == (
        "report",
        "rules",
        "invalid_output:no_json",
    )


def test_an_action_outside_the_allow_list_is_never_run(run_incident, llm_server, llm_connection):
    llm_server.default = Reply.valid(action="shutdown_device")  # a real action, but from another runbook

    outcome = run_incident(CRITICAL, decide=_approve)

    assert outcome.state == "success"
    analysis = outcome.incident.analysis
    assert analysis["analyzer"] == "rules" and analysis["recommended_action"] == "isolate_pump"
    actions = {a["action"] for a in outcome.store.actions.for_incident(outcome.incident.id)}
    assert "shutdown_device" not in actions


def test_a_model_that_is_down_does_not_fail_the_run(run_incident, llm_server, llm_connection):
    llm_connection(max_attempts=2)
    llm_server.default = Reply.error(503)

    outcome = run_incident({"device_id": "SENSOR-T-88", "error": "STUCK_READING"})

    assert outcome.state == "success"
    assert outcome.tasks["ai_summarize"] == "success" and outcome.tasks["ai_diagnose"] == "success"
    assert outcome.incident.analysis["analyzer"] == "rules"
    assert outcome.incident.outcome == "ticketed"
    assert outcome.tasks["final_report"] == "success"
    assert len(llm_server.requests) == 6  # summarize, diagnose and report: two attempts each


def test_a_rate_limit_is_waited_out_inside_the_step(run_incident, llm_server, llm_connection):
    llm_server.enqueue(
        Reply.error(429, retry_after=0.1),
        Reply.json({"summary": "Stuck sensor."}),
        Reply.error(429, retry_after=0.1),
        _diagnosis("reset_sensor", confidence=0.8, severity="warning"),
    )

    outcome = run_incident({"device_id": "SENSOR-T-88", "error": "STUCK_READING"})

    assert outcome.state == "success"
    analysis = outcome.incident.analysis
    assert (analysis["analyzer"], analysis["recommended_action"], analysis["summary"]) == (
        "llm",
        "reset_sensor",
        "Stuck sensor.",
    )
    assert outcome.tasks["create_ticket"] == "success"
