"""Reading model answers: the chat envelope, JSON extraction and validation against the allow-list."""

from __future__ import annotations

import json

import pytest

from include.llm_output import (
    ActionNotAllowedError,
    BadEnvelopeError,
    CallRecord,
    ChatReply,
    InvalidAnswerError,
    NoJsonError,
    RefusalError,
    TruncatedError,
    Usage,
    extract_json_object,
    parse_chat_response,
    parse_diagnosis,
    parse_summary,
    raise_severity,
)
from include.runbooks import get_runbook

GOOD = {
    "severity": "critical",
    "diagnosis": "A closed valve.",
    "recommended_action": "open_bypass_valve",
    "confidence": 0.8,
}
RUNBOOK = get_runbook("pressure_spike")


def _reply(content, finish_reason="stop", refusal=None):
    return ChatReply(content=content, finish_reason=finish_reason, model="m", usage=Usage(), refusal=refusal)


def _diagnosis(content, **kwargs):
    return parse_diagnosis(_reply(content, **kwargs), runbook=RUNBOOK, summary="S")


# -- envelope ----------------------------------------------------------------------------------------


def test_chat_envelope_is_read():
    body = {
        "model": "gpt-x",
        "choices": [{"finish_reason": "stop", "message": {"content": "{}"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }

    reply = parse_chat_response(body)

    assert (reply.content, reply.finish_reason, reply.model) == ("{}", "stop", "gpt-x")
    assert reply.usage == Usage(10, 5, 15)


def test_missing_or_odd_usage_counts_as_zero():
    body = {
        "choices": [{"message": {"content": "x"}}],
        "usage": {"prompt_tokens": "many", "completion_tokens": 3},
    }

    assert parse_chat_response(body).usage == Usage(0, 3, 3)
    assert parse_chat_response({"choices": [{"message": {"content": "x"}}]}).usage == Usage()


@pytest.mark.parametrize("body", [[], "text", {}, {"choices": []}, {"choices": [{}]}, {"choices": ["x"]}])
def test_malformed_envelopes_are_rejected(body):
    with pytest.raises(BadEnvelopeError):
        parse_chat_response(body)


def test_usage_adds_up():
    assert Usage(1, 2, 3) + Usage(10, 20, 30) == Usage(11, 22, 33)


# -- JSON extraction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(GOOD),
        f"```json\n{json.dumps(GOOD)}\n```",
        f"```\n{json.dumps(GOOD, indent=2)}\n```",
        f"Here is my analysis:\n\n{json.dumps(GOOD)}\n\nLet me know if you need more.",
        f"Sure! ```json\n{json.dumps(GOOD)}\n``` Hope this helps.",
        f'Example: {{"a": 1}}. Answer: {json.dumps(GOOD)}',
    ],
)
def test_the_json_object_is_found_in_fences_and_prose(content):
    assert extract_json_object(content, required=tuple(GOOD)) == GOOD


def test_the_first_object_is_used_when_none_has_the_required_keys():
    assert extract_json_object('x {"a": 1} y {"b": 2}', required=("c",)) == {"a": 1}


def test_braces_inside_strings_do_not_confuse_extraction():
    obj = {"diagnosis": "set {x} to }", "severity": "info"}

    assert extract_json_object(f"prefix {json.dumps(obj)} suffix") == obj


@pytest.mark.parametrize("content", ["no json here", "[1, 2, 3]", '{"severity": "crit', "{{{{", ""])
def test_no_object_is_no_json(content):
    with pytest.raises(NoJsonError):
        extract_json_object(content)


@pytest.mark.parametrize("content", ["{" * 100_000, '{"a":' * 100_000, "[" * 100_000])
def test_pathological_answers_are_no_json_not_a_crash(content):
    with pytest.raises(NoJsonError):
        extract_json_object(content)


# -- diagnosis ---------------------------------------------------------------------------------------


def test_a_good_answer_becomes_an_llm_analysis():
    analysis = _diagnosis(json.dumps(GOOD))

    assert analysis.analyzer == "llm" and analysis.runbook == "pressure_spike"
    assert (analysis.severity, analysis.recommended_action, analysis.confidence) == (
        "critical",
        "open_bypass_valve",
        0.8,
    )
    assert analysis.summary == "S"


def test_small_format_slips_are_accepted():
    analysis = _diagnosis(
        json.dumps(
            {
                **GOOD,
                "severity": " Critical ",
                "recommended_action": " reduce_load ",
                "confidence": "0.7",
                "extra": "ignored",
            }
        )
    )

    assert (analysis.severity, analysis.recommended_action, analysis.confidence) == (
        "critical",
        "reduce_load",
        0.7,
    )


def test_an_action_outside_the_allow_list_is_rejected():
    with pytest.raises(ActionNotAllowedError):
        _diagnosis(json.dumps({**GOOD, "recommended_action": "shutdown_device"}))  # another runbook's action
    with pytest.raises(ActionNotAllowedError):
        _diagnosis(json.dumps({**GOOD, "recommended_action": "rm -rf /"}))


@pytest.mark.parametrize(
    "change",
    [
        {"severity": "catastrophic"},
        {"confidence": 1.5},
        {"confidence": -0.1},
        {"confidence": True},
        {"confidence": "high"},
        {"diagnosis": ""},
        {"diagnosis": "x" * 5000},
        {"recommended_action": None},
        {"recommended_action": ["reduce_load"]},
    ],
)
def test_schema_violations_are_rejected(change):
    with pytest.raises(InvalidAnswerError):
        _diagnosis(json.dumps({**GOOD, **change}))


def test_missing_keys_are_rejected_without_echoing_values():
    with pytest.raises(InvalidAnswerError) as info:
        _diagnosis(json.dumps({"severity": "critical", "diagnosis": "SECRET-ALERT-TEXT"}))

    assert "SECRET-ALERT-TEXT" not in str(info.value)
    assert "confidence" in str(info.value)


def test_truncated_answers_are_named_so():
    with pytest.raises(TruncatedError):
        _diagnosis('{"severity": "critical", "diagnosis": "The val', finish_reason="length")
    with pytest.raises(NoJsonError):
        _diagnosis('{"severity": "critical", "diagnosis": "The val')


def test_refusals_and_empty_answers_are_rejected():
    with pytest.raises(RefusalError):
        _diagnosis(None, refusal="I can't help with that.")
    with pytest.raises(NoJsonError):
        _diagnosis(None)
    with pytest.raises(TruncatedError):
        _diagnosis("", finish_reason="length")


# -- summary -----------------------------------------------------------------------------------------


def test_summary_is_read_and_normalised():
    assert (
        parse_summary(_reply('```json\n{"summary": "Pump  PUMP-07B\\nspiked."}\n```'))
        == "Pump PUMP-07B spiked."
    )


@pytest.mark.parametrize(
    "content", ['{"summary": ""}', '{"summary": 3}', '{"text": "x"}', json.dumps({"summary": "x" * 2001})]
)
def test_bad_summaries_are_rejected(content):
    with pytest.raises(InvalidAnswerError):
        parse_summary(_reply(content))


# -- severity floor and record -----------------------------------------------------------------------


def test_severity_is_raised_to_the_floor_never_lowered():
    analysis = _diagnosis(json.dumps({**GOOD, "severity": "warning"}))

    raised = raise_severity(analysis, "critical", "the runbook says so")
    assert raised.severity == "critical"
    assert raised.diagnosis.endswith("Severity raised from warning to critical: the runbook says so.")
    assert raise_severity(raised, "info", "x") is raised
    assert raise_severity(analysis, None, "x") is analysis


def test_call_record_is_json_safe():
    record = CallRecord(step="diagnose", usage=Usage(1, 2, 3), invalid_answers=["no_json"])

    assert json.loads(json.dumps(record.to_dict()))["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }
