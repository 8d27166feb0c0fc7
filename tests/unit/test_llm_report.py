"""The final report by the model: its prompt, the check of its answer, the fallback to the plain one."""

# The fixtures are imported into this module (not conftest.py); their use as parameters is not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json

import pytest

from incident_ops import analysis
from include.llm_output import (
    REPORT_MAX_CHARS,
    ChatReply,
    InvalidAnswerError,
    NoJsonError,
    UnfaithfulReportError,
    UnverifiableReportError,
    Usage,
    parse_report,
    report_facts,
)
from include.prompting import REPORT_PROMPT, build_report_prompt, report_schema
from include.redaction import Redactor
from tests.fakes.llm_fixtures import llm_connection, llm_server  # noqa: F401
from tests.fakes.llm_server import Reply

PLAIN = (
    "Incident inc-0123456789ab: PRESSURE_SPIKE_DETECTED on PUMP-07B - escalated_rejected\n"
    "Severity critical; analyser llm, confidence 90%\n"
    "Diagnosis: A closed downstream valve.\n"
    "Approval apr-abcdef012345 for isolate_pump: rejected by jane@example.com (web, reject)\n"
    "Action open_bypass_valve on PUMP-07B: done (dry_run)\n"
    "Ticket: TCK-42\n"
    "Timeline:\n"
    "  12:00:01 opened\n"
    "  12:03:10 escalated\n"
    "Time to acknowledge: 2.5 min; time to resolve: 3.2 min"
)
GOOD = (
    "Incident inc-0123456789ab on PUMP-07B: Escalated_Rejected.\n"
    "isolate_pump was rejected at 12:03; ticket TCK-42 is open. Acknowledged in 2.5 min, resolved in 3.2 min."
)


def _reply(content, finish_reason="stop"):
    return ChatReply(content=content, finish_reason=finish_reason, model="m", usage=Usage())


def _parse(content):
    return parse_report(_reply(content), plain_report=PLAIN)


# -- the prompt --------------------------------------------------------------------------------------


def test_the_prompt_carries_the_plain_report_redacted_and_a_one_key_schema():
    prompt = build_report_prompt(PLAIN, redactor=Redactor())

    assert prompt.version == REPORT_PROMPT == "report.v1" and len(prompt.sha256) == 12
    system, user = (m["content"] for m in prompt.messages)
    assert "only the facts" in system.lower() and "outcome" in system
    assert "inc-0123456789ab" in user and "escalated_rejected" in user and "12:03:10" in user
    assert "jane@example.com" not in user and "[REDACTED:email]" in user
    assert prompt.redactions == {"email": 1}
    assert prompt.schema == report_schema()
    assert prompt.schema["required"] == ["report"] and not prompt.schema["additionalProperties"]
    assert prompt.response_format()["json_schema"]["name"] == "incident_report"
    assert "{{" not in system + user


def test_placeholders_in_the_report_are_not_expanded():
    prompt = build_report_prompt(PLAIN + "\nnote {{plain_report}}", redactor=Redactor())

    assert prompt.messages[1]["content"].count("{{plain_report}}") == 1


# -- the answer --------------------------------------------------------------------------------------


def test_facts_come_from_the_first_line():
    assert report_facts(PLAIN) == ("inc-0123456789ab", "escalated_rejected")
    with pytest.raises(UnverifiableReportError):
        report_facts("no incident line\nat all")
    with pytest.raises(UnverifiableReportError):
        report_facts("")


def test_a_good_report_is_accepted():
    assert _parse(json.dumps({"report": f"  {GOOD}\n"})) == GOOD


def test_prose_and_fences_around_the_json_are_tolerated():
    content = f"Here is the report:\n```json\n{json.dumps({'report': GOOD})}\n```\nHope it helps."

    assert _parse(content) == GOOD
    assert _parse(f"Sure! {json.dumps({'report': GOOD})} Done.") == GOOD


@pytest.mark.parametrize("value", ["", "   \n ", None, 42, ["a"]])
def test_an_empty_or_non_string_report_is_rejected(value):
    with pytest.raises(InvalidAnswerError):
        _parse(json.dumps({"report": value}))


def test_no_json_is_rejected():
    with pytest.raises(NoJsonError):
        _parse(GOOD)


def test_a_report_too_long_is_rejected():
    with pytest.raises(InvalidAnswerError, match="longer than"):
        _parse(json.dumps({"report": GOOD + " x" * REPORT_MAX_CHARS}))


@pytest.mark.parametrize(
    "report",
    [
        "Incident on PUMP-07B: escalated_rejected.",  # no id
        "Incident inc-0123456789ab0 on PUMP-07B: escalated_rejected.",  # another id
        "Incident inc-0123456789ab on PUMP-07B was fixed.",  # invented outcome
        "Incident inc-0123456789ab on PUMP-07B: escalated.",  # part of the outcome only
        "Incident inc-0123456789ab: escalated_rejected by [REDACTED:email].",  # who decided, hidden
    ],
)
def test_a_report_that_loses_the_id_or_the_outcome_is_rejected(report):
    with pytest.raises(UnfaithfulReportError) as caught:
        _parse(json.dumps({"report": report}))
    assert caught.value.code == "unfaithful_report"


def test_a_plain_report_without_its_first_line_cannot_be_checked():
    with pytest.raises(UnverifiableReportError):
        parse_report(_reply(json.dumps({"report": GOOD})), plain_report="Timeline:\n  12:00:01 opened")


# -- the service -------------------------------------------------------------------------------------


def test_without_a_connection_the_plain_report_is_the_report(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_LLM_DEFAULT", raising=False)

    report, record = analysis.write_report_with_record(PLAIN)

    assert report == PLAIN
    assert (record["analyzer"], record["fallback_reason"], record["requests"]) == (
        "rules",
        "not_configured",
        0,
    )


def test_the_model_writes_the_report(llm_server, llm_connection):
    llm_server.enqueue(Reply.json({"report": GOOD}))

    report, record = analysis.write_report_with_record(PLAIN)

    assert report == GOOD
    assert (record["step"], record["analyzer"], record["fallback_reason"]) == ("report", "llm", None)
    assert record["prompt_version"] == "report.v1" and record["redactions"] == {"email": 1}
    [request] = llm_server.requests
    assert request.schema_name == "incident_report" and "jane@example.com" not in json.dumps(request.body)


def test_an_invented_outcome_twice_falls_back_to_the_plain_report(llm_server, llm_connection):
    llm_server.default = Reply.json({"report": "Incident inc-0123456789ab: fixed, all good."})

    report, record = analysis.write_report_with_record(PLAIN)

    assert report == PLAIN
    assert record["analyzer"] == "rules" and record["invalid_answers"] == ["unfaithful_report"] * 2
    assert record["fallback_reason"] == "invalid_output:unfaithful_report"
    assert len(llm_server.requests) == 2


def test_a_model_that_is_down_falls_back_to_the_plain_report(llm_server, llm_connection):
    llm_connection(max_attempts=1)
    llm_server.default = Reply.error(503)

    report, record = analysis.write_report_with_record(PLAIN)

    assert report == PLAIN and record["analyzer"] == "rules" and record["fallback_reason"]


def test_a_bug_on_the_llm_path_never_fails_the_report(llm_server, llm_connection, monkeypatch):
    def boom(*_, **__):
        raise RuntimeError("bug")

    monkeypatch.setattr(analysis, "parse_report", boom)
    llm_server.enqueue(Reply.json({"report": GOOD}))

    report, record = analysis.write_report_with_record(PLAIN)

    assert report == PLAIN and record["fallback_reason"] == "error:RuntimeError"
