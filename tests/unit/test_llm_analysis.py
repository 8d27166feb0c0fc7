"""The AI steps' service (incident_ops.analysis) against the fake LLM: one test per model behaviour.

Each checks which analyser answered, the confidence, whether approval is forced, and how many
requests were made.
"""

# The fixtures are imported into this module (not conftest.py); their use as parameters is not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
import logging

import pytest

from incident_ops import analysis
from include import rules_analyzer
from include.approval_policy import caution
from include.models import Alert, Enrichment
from include.runbooks import get_runbook
from tests.fakes.llm_fixtures import llm_connection, llm_server  # noqa: F401
from tests.fakes.llm_server import DEFAULT_TEST_KEY, Reply

SECRET_MESSAGE = (
    "Pump alarm. Call ops@example.org, session token=tok_9f8e7d6c5b4a and key sk-live-ABCDEFGHIJKLMNOP1234"
)
ALERT = Alert(
    device_id="PUMP-07B",
    error="PRESSURE_SPIKE_DETECTED",
    metrics={"pressure_bar": 9.4},
    message=SECRET_MESSAGE,
)
ENRICHMENT = Enrichment(device_id="PUMP-07B", known=True, site="Plant North", kind="pump")
SUMMARY = {"summary": "PRESSURE_SPIKE_DETECTED on pump PUMP-07B", "analyzer": "rules"}
GOOD = {
    "severity": "critical",
    "diagnosis": "A closed downstream valve.",
    "recommended_action": "open_bypass_valve",
    "confidence": 0.85,
}
RUNBOOK = get_runbook("pressure_spike")


def _reasons(result, alert=ALERT):
    rules = rules_analyzer.analyze(alert, ENRICHMENT)
    return caution(alert, rules=rules, proposed=result, runbook=get_runbook(result.runbook)).reasons


def _summarize():
    document, record = analysis.summarize_with_record(ALERT, ENRICHMENT)
    return {**document, "llm": record.to_dict()} if analysis.model_was_asked(record) else document


def _diagnose(alert=ALERT, enrichment=ENRICHMENT):
    return analysis.diagnose_with_record(alert, enrichment, SUMMARY)


# -- no connection -----------------------------------------------------------------------------------


def test_without_a_connection_the_rules_answer_as_before(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_LLM_DEFAULT", raising=False)

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.confidence == 0.9  # unchanged: no fallback penalty
    assert result.recommended_action == "isolate_pump"
    assert record["fallback_reason"] == "not_configured" and record["requests"] == 0
    assert analysis.diagnose_with_record(ALERT, ENRICHMENT, SUMMARY).analysis == result
    rules = rules_analyzer.analyze(ALERT, ENRICHMENT)
    assert _summarize() == {"summary": rules.summary, "analyzer": "rules"}


def test_the_missing_connection_is_logged_once(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_LLM_DEFAULT", raising=False)
    monkeypatch.setattr(analysis, "_not_configured_logged", False)
    caplog.set_level(logging.INFO, logger="incident_ops.analysis")

    for _ in range(3):
        analysis.diagnose_with_record(ALERT, ENRICHMENT, SUMMARY)

    assert sum("No llm_default connection" in r.getMessage() for r in caplog.records) == 1


# -- good answers ------------------------------------------------------------------------------------


def test_a_good_answer_is_used(llm_server, llm_connection):
    llm_server.enqueue(
        Reply.json(GOOD, usage={"prompt_tokens": 700, "completion_tokens": 40, "total_tokens": 740})
    )

    result, record = _diagnose()

    assert (result.analyzer, result.recommended_action, result.confidence) == (
        "llm",
        "open_bypass_valve",
        0.85,
    )
    assert result.severity == "critical" and result.runbook == "pressure_spike"
    assert result.summary == SUMMARY["summary"]
    # Low risk and confident, but not the rules' choice: a human decides (the model only adds caution).
    assert _reasons(result) == ["the model proposed open_bypass_valve instead of isolate_pump"]
    assert len(llm_server.requests) == 1
    assert record["analyzer"] == "llm" and record["model"] == "fake-gpt" and record["requests"] == 1
    assert record["prompt_version"] == "diagnose.v1" and record["fallback_reason"] is None
    assert record["usage"] == {"prompt_tokens": 700, "completion_tokens": 40, "total_tokens": 740}
    assert record["latency_ms"] >= 0


def test_the_request_is_what_the_contract_says(llm_server, llm_connection):
    _diagnose()

    [request] = llm_server.requests
    assert request.model == "fake-gpt"
    assert request.authorization == f"Bearer {DEFAULT_TEST_KEY}"
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["response_format"]["json_schema"]["strict"] is True
    assert request.action_enum == RUNBOOK.allowed_actions
    assert request.body["max_tokens"] == 800 and request.body["temperature"] == 0.0


def test_the_prompt_is_redacted(llm_server, llm_connection):
    llm_connection(redact_ips=True)
    alert = ALERT.model_copy(update={"labels": {"gateway": "10.9.8.7", "owner": "jane@example.com"}})

    analysis.diagnose_with_record(alert, ENRICHMENT, SUMMARY)

    sent = json.dumps(llm_server.requests[0].body)
    for secret in (
        "ops@example.org",
        "tok_9f8e7d6c5b4a",
        "sk-live-ABCDEFGHIJKLMNOP1234",
        "10.9.8.7",
        "jane@example.com",
    ):
        assert secret not in sent
    assert "[REDACTED:email]" in sent and "[REDACTED:ip]" in sent and "PUMP-07B" in sent


def test_the_model_may_pick_a_risky_action_and_approval_follows(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({**GOOD, "recommended_action": "isolate_pump", "confidence": 0.95}))

    result, _ = _diagnose()

    assert (result.analyzer, result.recommended_action) == ("llm", "isolate_pump")
    assert _reasons(result) == ["action isolate_pump is high risk"]


def test_a_low_confidence_answer_forces_approval(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({**GOOD, "confidence": 0.4}))

    result, _ = _diagnose()

    assert result.analyzer == "llm" and "confidence 0.40 is below 0.60" in _reasons(result)


def test_json_wrapped_in_prose_and_fences_is_accepted(llm_server, llm_connection):
    llm_server.enqueue(Reply.text(f"Here is the diagnosis:\n```json\n{json.dumps(GOOD)}\n```\nStay safe."))

    result, record = _diagnose()

    assert result.analyzer == "llm" and record["requests"] == 1


def test_servers_without_structured_output(llm_server, llm_connection):
    llm_connection(response_format="none")
    llm_server.enqueue(Reply.text(f"Diagnosis: {json.dumps(GOOD)}"))

    result, _ = _diagnose()

    assert result.analyzer == "llm"
    assert "response_format" not in llm_server.requests[0].body


# -- bad answers -------------------------------------------------------------------------------------


def test_one_bad_answer_is_retried_with_a_repair_note(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({**GOOD, "recommended_action": "shutdown_device"}), Reply.json(GOOD))

    result, record = _diagnose()

    assert result.analyzer == "llm" and record["requests"] == 2
    assert record["invalid_answers"] == ["action_not_allowed"]
    retry = llm_server.requests[1].body["messages"]
    assert len(retry) == 3 and "action_not_allowed" in retry[-1]["content"]
    assert "isolate_pump, open_bypass_valve, reduce_load" in retry[-1]["content"]
    assert retry[:2] == llm_server.requests[0].body["messages"]


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply.json({**GOOD, "recommended_action": "shutdown_device"}), "action_not_allowed"),
        (Reply.text("The pump is probably fine, I would reduce load."), "no_json"),
        (Reply.truncated(), "truncated"),
        (Reply.json({**GOOD, "confidence": 7}), "invalid_schema"),
        (Reply.json({"severity": "critical"}), "invalid_schema"),
    ],
)
def test_two_bad_answers_fall_back_to_the_rules_and_force_approval(llm_server, llm_connection, reply, code):
    llm_server.default = reply

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.recommended_action == "isolate_pump"
    assert result.confidence == 0.5
    assert "confidence 0.50 is below 0.60" in _reasons(result)
    assert len(llm_server.requests) == 2 and record["requests"] == 2
    assert record["invalid_answers"] == [code, code]
    assert record["fallback_reason"] == f"invalid_output:{code}"
    assert "Rules analyser used" in result.diagnosis


def test_fallback_confidence_is_never_raised(llm_server, llm_connection):
    llm_server.default = Reply.text("no idea")
    alert = Alert(device_id="X-1", error="SOMETHING_ODD")  # unknown runbook: rules confidence 0.3

    result, _ = _diagnose(alert=alert)

    assert result.analyzer == "rules" and result.confidence == 0.3 and result.runbook == "unknown"


# -- transport failures ------------------------------------------------------------------------------


def test_429_with_retry_after_then_a_good_answer(llm_server, llm_connection):
    llm_server.enqueue(Reply.error(429, retry_after=0.05), Reply.json(GOOD))

    result, record = _diagnose()

    assert result.analyzer == "llm" and record["requests"] == 2
    assert record["failed_requests"] == ["rate_limited"]
    assert llm_server.requests[1].time - llm_server.requests[0].time >= 0.05


def test_a_retry_after_past_the_budget_falls_back_at_once(llm_server, llm_connection):
    llm_server.default = Reply.error(429, retry_after=120)

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.confidence == 0.5 and _reasons(result)
    assert record["requests"] == 1 and record["fallback_reason"] == "rate_limited"


def test_persistent_500_falls_back_after_three_attempts(llm_server, llm_connection):
    llm_server.default = Reply.error(500)

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.confidence == 0.5
    assert len(llm_server.requests) == 3 and record["fallback_reason"] == "http_500"
    assert record["failed_requests"] == ["http_500"] * 3


def test_no_answer_times_out_and_falls_back(llm_server, llm_connection):
    llm_connection(timeout=0.2, max_attempts=2)
    llm_server.default = Reply.no_answer(3)

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.confidence == 0.5
    assert len(llm_server.requests) == 2 and record["fallback_reason"] == "timeout"


def test_a_refused_key_falls_back_without_retrying(llm_server, llm_connection):
    llm_connection(headers={"Authorization": "Bearer sk-wrong-key-000000000000"})

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.confidence == 0.5
    assert len(llm_server.requests) == 1 and record["fallback_reason"] == "http_401"


def test_the_step_deadline_bounds_everything(llm_server, llm_connection):
    llm_connection(timeout=0.3, deadline=0.5, max_attempts=5)
    llm_server.default = Reply.no_answer(3)

    result, record = _diagnose()

    assert result.analyzer == "rules"
    assert record["fallback_reason"] in ("deadline", "timeout") and record["latency_ms"] < 1500


def test_invalid_settings_fall_back_to_the_rules(llm_server, llm_connection):
    llm_connection(temperature="hot")

    result, record = _diagnose()

    assert result.analyzer == "rules" and result.confidence == 0.5
    assert record["fallback_reason"] == "bad_config" and llm_server.requests == []


def test_an_unexpected_error_on_the_llm_path_falls_back(llm_server, llm_connection, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug with SECRET prompt text")

    monkeypatch.setattr("include.prompting.build_diagnose_prompt", boom)

    result, record = _diagnose()

    assert result.analyzer == "rules" and record["fallback_reason"] == "error:RuntimeError"


# -- severity guards ---------------------------------------------------------------------------------


def test_the_model_cannot_lower_a_critical_reading(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({**GOOD, "severity": "info"}))

    result, _ = _diagnose()

    assert result.analyzer == "llm" and result.severity == "critical"
    assert "Severity raised from info to critical" in result.diagnosis


def test_the_model_may_not_lower_a_default_severity(llm_server, llm_connection):
    alert = Alert(device_id="SENSOR-1", error="STUCK_READING")
    llm_server.enqueue(
        Reply.json(
            {
                "severity": "info",
                "diagnosis": "Drift only.",
                "recommended_action": "recalibrate_sensor",
                "confidence": 0.9,
            }
        )
    )

    result, _ = _diagnose(alert=alert)

    # The rules' severity is a floor at every level: the model's "info" does not drop the ticket.
    assert (result.analyzer, result.severity) == ("llm", "warning")


def test_the_senders_hint_is_a_floor(llm_server, llm_connection):
    alert = Alert(device_id="SENSOR-1", error="STUCK_READING", severity="critical")
    llm_server.enqueue(
        Reply.json(
            {
                "severity": "warning",
                "diagnosis": "Drift.",
                "recommended_action": "reset_sensor",
                "confidence": 0.9,
            }
        )
    )

    result, _ = _diagnose(alert=alert)

    assert result.severity == "critical"


# -- summarize ---------------------------------------------------------------------------------------


def test_summarize_uses_the_model(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({"summary": "Pump PUMP-07B at Plant North: pressure 9.4 bar."}))

    document = _summarize()

    assert document["summary"] == "Pump PUMP-07B at Plant North: pressure 9.4 bar."
    assert document["analyzer"] == "llm" and document["llm"]["prompt_version"] == "summarize.v1"
    assert llm_server.requests[0].schema_name == "incident_summary"


def test_summarize_falls_back_to_the_rules_summary(llm_server, llm_connection):
    llm_server.default = Reply.text("I cannot summarise this.")

    document = _summarize()

    assert document["analyzer"] == "rules" and document["summary"].startswith(
        "PRESSURE_SPIKE_DETECTED on pump"
    )
    assert document["llm"]["fallback_reason"] == "invalid_output:no_json" and len(llm_server.requests) == 2


def test_the_llm_summary_reaches_the_diagnosis(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({"summary": "Short summary."}), Reply.json(GOOD))

    document = _summarize()
    result = analysis.diagnose_with_record(ALERT, ENRICHMENT, document).analysis

    assert result.summary == "Short summary." and "Short summary." in llm_server.requests[1].prompt


# -- logs --------------------------------------------------------------------------------------------


def test_logs_never_hold_the_prompt_the_alert_or_the_key(llm_server, llm_connection, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    llm_server.enqueue(Reply.error(429, retry_after=0.01), Reply.json(GOOD))

    analysis.diagnose_with_record(ALERT, ENRICHMENT, SUMMARY)
    llm_server.default = Reply.json({**GOOD, "recommended_action": "rm -rf /", "diagnosis": SECRET_MESSAGE})
    analysis.diagnose_with_record(ALERT, ENRICHMENT, SUMMARY)
    _summarize()

    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "AI diagnose: analyzer=llm" in logged and "fallback=invalid_output:action_not_allowed" in logged
    for forbidden in (
        DEFAULT_TEST_KEY,
        "Pump alarm",
        "ops@example.org",
        "tok_9f8e7d6c5b4a",
        RUNBOOK.grounding[:40],
        "Answer with a JSON object",
    ):
        assert forbidden not in logged
