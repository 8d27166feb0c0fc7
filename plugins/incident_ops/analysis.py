"""The AI steps: an LLM through `llm_default` when configured, the rules analyser otherwise.

The rules always run first: they pick the runbook (retrieval), and their answer is the fallback.
The model may refine severity, diagnosis and the action, but only within the runbook's allow-list,
and its answer is validated before it is used. A model that times out, rate-limits past the retry
budget, or answers garbage twice never fails the run: the rules answer, with confidence lowered so
that a human approves whatever is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from include import rules_analyzer
from include.llm_output import (
    CallRecord,
    LlmOutputError,
    parse_chat_response,
    parse_diagnosis,
    parse_report,
    parse_summary,
    raise_severity,
)
from include.models import Alert, Analysis, Enrichment
from include.names import LLM_CONN_ID
from include.vocabulary import Severity

if TYPE_CHECKING:
    from incident_ops.hooks.llm import LlmHook
    from include.llm_output import ChatReply
    from include.prompting import Prompt

log = logging.getLogger(__name__)
# The fallback reason of a step when no model is configured: the rules answered by design.
NOT_CONFIGURED = "not_configured"
# Below the approval policy's 0.6 threshold: a fallback answer never acts without a human.
FALLBACK_CONFIDENCE = 0.5
T = TypeVar("T")

_not_configured_logged = False


class Diagnosis(NamedTuple):
    """The analysis and the record of how it was obtained (analyser, model, latency, tokens...)."""

    analysis: Analysis
    record: dict[str, Any]


class _NotConfigured(Exception):
    """No `llm_default` connection: the rules answer, as designed."""


class _BadConfig(Exception):
    """`llm_default` exists but its extra is invalid."""


def _hook(conn_id: str | None = LLM_CONN_ID) -> LlmHook:
    """Return the hook for `conn_id` (`llm_default`), or raise _NotConfigured / _BadConfig.

    `conn_id` None means "the rules only": `make eval` scores them through this same path.
    """
    from incident_ops.connections import optional_connection
    from include.llm_settings import LlmConfigError, LlmSettings

    global _not_configured_logged
    if conn_id is None:
        raise _NotConfigured
    connection = optional_connection(conn_id)
    if connection is None:
        if not _not_configured_logged:
            log.info("No %s connection: the rules analyser answers", conn_id)
            _not_configured_logged = True
        raise _NotConfigured
    try:
        settings = LlmSettings.from_extra(connection.extra_dejson)
    except LlmConfigError as exc:
        # The message names the key and the expected type, never a value.
        log.error("Connection %s has invalid settings (%s): the rules analyser answers", conn_id, exc)
        raise _BadConfig from None
    from incident_ops.hooks.llm import LlmHook  # only now: the HTTP provider is a slow import

    return LlmHook(conn_id, settings=settings, connection=connection)


def _redactor(hook: LlmHook):
    from include.redaction import Redactor

    return Redactor(redact_ips=hook.settings.redact_ips, redact_emails=hook.settings.redact_emails)


def _repair_note(error: LlmOutputError, prompt: Prompt) -> dict[str, str]:
    """Return the message asking again after a rejected answer (static text: no alert data)."""
    actions = prompt.schema["properties"].get("recommended_action", {}).get("enum")
    extra = f" recommended_action must be exactly one of: {', '.join(actions)}." if actions else ""
    return {
        "role": "user",
        "content": f"Your previous answer was rejected ({error.code}). Answer again with only the JSON "
        f"object described above, with exactly the keys {', '.join(prompt.schema['required'])}.{extra}",
    }


def _ask(hook: LlmHook, prompt: Prompt, record: CallRecord, parse: Callable[[ChatReply], T]) -> T | None:
    """Call the model until `parse` accepts an answer; return None (reason in `record`) when it never does."""
    from incident_ops.hooks.llm import LlmError

    settings = hook.settings
    record.model, record.prompt_version, record.prompt_sha256 = settings.model, prompt.version, prompt.sha256
    record.redactions = prompt.redactions
    budget = hook.budget()
    response_format = prompt.response_format(settings.response_format)
    messages = list(prompt.messages)
    started = time.monotonic()
    try:
        for _ in range(settings.validation_attempts):
            try:
                result = hook.chat(messages, response_format=response_format, budget=budget)
            except LlmError as exc:
                record.requests += exc.requests
                record.failed_requests.extend(exc.failures)
                record.fallback_reason = exc.reason
                return None
            record.requests += result.requests
            record.failed_requests.extend(result.failures)
            try:
                reply = parse_chat_response(result.body)
                record.usage = record.usage + reply.usage
                value = parse(reply)
            except LlmOutputError as exc:
                record.invalid_answers.append(exc.code)
                messages = [*prompt.messages, _repair_note(exc, prompt)]
                continue
            record.analyzer = "llm"
            return value
        record.fallback_reason = f"invalid_output:{record.invalid_answers[-1]}"
        return None
    finally:
        record.latency_ms = round((time.monotonic() - started) * 1000)


def _log_record(record: CallRecord) -> None:
    # Codes and counts only: never the prompt, the answer, the alert or the key.
    log.info(
        "AI %s: analyzer=%s model=%s prompt=%s requests=%d latency=%dms tokens=%d invalid=%s fallback=%s",
        record.step,
        record.analyzer,
        record.model,
        record.prompt_version,
        record.requests,
        record.latency_ms,
        record.usage.total_tokens,
        ",".join(record.invalid_answers) or "-",
        record.fallback_reason or "-",
    )


def _guarded(step: str, work: Callable[[CallRecord], T | None]) -> tuple[T | None, CallRecord]:
    """Run the LLM path of a step; any failure of it ends in a record with a fallback reason."""
    record = CallRecord(step=step)
    try:
        value = work(record)
    except _NotConfigured:
        record.fallback_reason = NOT_CONFIGURED
        return None, record
    except _BadConfig:
        record.fallback_reason = "bad_config"
        value = None
    except Exception as exc:
        # The model's misbehaviour (or a bug around it) must not fail the incident run. The type is
        # enough to find it: a traceback or message could carry the prompt.
        log.error(
            "AI %s: unexpected %s on the LLM path; the rules analyser answers", step, type(exc).__name__
        )
        record.fallback_reason = f"error:{type(exc).__name__}"
        record.analyzer = "rules"
        value = None
    _log_record(record)
    return value, record


def summarize_with_record(
    alert: Alert, enrichment: Enrichment, *, conn_id: str | None = LLM_CONN_ID
) -> tuple[dict[str, Any], CallRecord]:
    """Return the summary document and the record of how it was written (`conn_id`: the model's)."""
    from include.prompting import build_summarize_prompt
    from include.runbooks import get_runbook

    rules = rules_analyzer.analyze(alert, enrichment)

    def work(record: CallRecord) -> str | None:
        hook = _hook(conn_id)
        prompt = build_summarize_prompt(
            alert, enrichment, get_runbook(rules.runbook), redactor=_redactor(hook)
        )
        return _ask(hook, prompt, record, parse_summary)

    summary, record = _guarded("summarize", work)
    if summary is None:
        return {"summary": rules.summary, "analyzer": "rules"}, record
    return {"summary": summary, "analyzer": "llm"}, record


def model_was_asked(record: CallRecord | dict[str, Any]) -> bool:
    """Say whether a step's record shows a configured model (whatever it answered): worth keeping."""
    reason = record.fallback_reason if isinstance(record, CallRecord) else record.get("fallback_reason")
    return reason != NOT_CONFIGURED


def severity_floor(alert: Alert, rules: Analysis) -> tuple[Severity, str]:
    """Return the lowest severity the model may give, and why (the caution policy decides it)."""
    from include.approval_policy import caution
    from include.runbooks import get_runbook

    floor = caution(alert, rules=rules, proposed=rules, runbook=get_runbook(rules.runbook)).severity
    return floor, "the rules' analysis and the sender's hint are a floor"


def _fallback(rules: Analysis, reason: str) -> Analysis:
    """Return the rules' analysis marked as a fallback, with confidence low enough to force approval."""
    note = f" (The LLM did not give a usable answer: {reason}. Rules analyser used; a human must approve.)"
    return Analysis.model_validate(
        {
            **rules.model_dump(),
            "confidence": min(rules.confidence, FALLBACK_CONFIDENCE),
            "diagnosis": rules.diagnosis[: 4000 - len(note)] + note,
        }
    )


def diagnose_with_record(
    alert: Alert,
    enrichment: Enrichment,
    summary: dict[str, Any] | None,
    *,
    conn_id: str | None = LLM_CONN_ID,
) -> Diagnosis:
    """Return the validated analysis and the record of the model call (analyser, model, tokens, fallback)."""
    from include.prompting import build_diagnose_prompt
    from include.runbooks import get_runbook

    rules = rules_analyzer.analyze(alert, enrichment)
    if summary and summary.get("summary"):
        rules = Analysis.model_validate({**rules.model_dump(), "summary": summary["summary"]})
    floor, why = severity_floor(alert, rules)

    def work(record: CallRecord) -> Analysis | None:
        hook = _hook(conn_id)
        # Retrieval: the rules chose the runbook; the model only sees, and may only pick from, its actions.
        runbook = get_runbook(rules.runbook)
        prompt = build_diagnose_prompt(
            alert, enrichment, runbook, rules=rules, summary=rules.summary, redactor=_redactor(hook)
        )

        def parse(reply: ChatReply) -> Analysis:
            return raise_severity(parse_diagnosis(reply, runbook=runbook, summary=rules.summary), floor, why)

        return _ask(hook, prompt, record, parse)

    analysis, record = _guarded("diagnose", work)
    if analysis is not None:
        return Diagnosis(analysis, record.to_dict())
    if not model_was_asked(record):
        return Diagnosis(rules, record.to_dict())
    return Diagnosis(_fallback(rules, record.fallback_reason or "unknown"), record.to_dict())


def write_report_with_record(
    plain_report: str, *, prompt_id: str | None = None, step: str = "report"
) -> tuple[str, dict[str, Any]]:
    """Return the final report (or, with another `prompt_id`, a text written from it) and its record.

    The model rewrites the plain report when configured and its answer keeps the incident id and
    the outcome; otherwise the plain report is the report. Never raises.
    """
    from include.prompting import REPORT_PROMPT, build_report_prompt

    def work(record: CallRecord) -> str | None:
        hook = _hook()
        prompt = build_report_prompt(
            plain_report, redactor=_redactor(hook), prompt_id=prompt_id or REPORT_PROMPT
        )

        def parse(reply: ChatReply) -> str:
            return parse_report(reply, plain_report=plain_report)

        return _ask(hook, prompt, record, parse)

    report, record = _guarded(step, work)
    return (report if report is not None else plain_report), record.to_dict()
