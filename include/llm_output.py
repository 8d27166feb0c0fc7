"""Reading a model's answer: the chat envelope, the JSON object inside it, and its validation."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from pydantic import ValidationError

from include.models import Analysis
from include.runbooks import Runbook
from include.vocabulary import Severity

__all__ = [
    "ActionNotAllowedError",
    "BadEnvelopeError",
    "CallRecord",
    "ChatReply",
    "InvalidAnswerError",
    "LlmOutputError",
    "NoJsonError",
    "RefusalError",
    "TruncatedError",
    "UnfaithfulReportError",
    "UnverifiableReportError",
    "Usage",
    "extract_json_object",
    "parse_chat_response",
    "parse_diagnosis",
    "parse_report",
    "parse_summary",
    "raise_severity",
    "report_facts",
]

# Bounds on the work spent looking for JSON in prose; an answer is at most max_tokens long anyway.
MAX_CONTENT_CHARS = 200_000
MAX_CANDIDATES = 200
SUMMARY_MAX_CHARS = 2000
REPORT_MAX_CHARS = 6000
# The plain report's first line, as include.reports.final_report_text writes it.
_REPORT_HEAD = re.compile(r"^Incident (?P<id>\S+): .* - (?P<outcome>\S+)$")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)```", re.DOTALL)


class LlmOutputError(ValueError):
    """The model answered, but not with something we accept. :attr:`code` names why, for records."""

    code: ClassVar[str] = "invalid_output"


class BadEnvelopeError(LlmOutputError):
    """The HTTP body is not an OpenAI-style chat completion."""

    code = "bad_envelope"


class RefusalError(LlmOutputError):
    """The model refused to answer."""

    code = "refusal"


class TruncatedError(LlmOutputError):
    """The answer was cut off (``finish_reason: length``) before the JSON object closed."""

    code = "truncated"


class NoJsonError(LlmOutputError):
    """The answer holds no JSON object."""

    code = "no_json"


class InvalidAnswerError(LlmOutputError):
    """The JSON object does not match the schema (missing field, wrong type, out of range)."""

    code = "invalid_schema"


class ActionNotAllowedError(LlmOutputError):
    """The recommended action is not in the runbook's allow-list."""

    code = "action_not_allowed"


class UnfaithfulReportError(LlmOutputError):
    """The report drops the incident id or its outcome, or hides a fact behind a redaction placeholder."""

    code = "unfaithful_report"


class UnverifiableReportError(LlmOutputError):
    """The plain report's first line is not "Incident <id>: ... - <outcome>": nothing to check against."""

    code = "unverifiable_report"


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the server (zero when it reports none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    @classmethod
    def from_body(cls, raw: Any) -> Usage:
        """Read the ``usage`` object of a completion, ignoring anything malformed."""
        if not isinstance(raw, dict):
            return cls()

        def count(key: str) -> int:
            value = raw.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

        prompt, completion = count("prompt_tokens"), count("completion_tokens")
        return cls(prompt, completion, count("total_tokens") or prompt + completion)


@dataclass(frozen=True)
class ChatReply:
    """The parts of a chat completion we use."""

    content: str | None
    finish_reason: str | None
    model: str | None
    usage: Usage
    refusal: str | None = None


def parse_chat_response(body: Any) -> ChatReply:
    """Read the first choice of an OpenAI-style chat completion body."""
    if not isinstance(body, dict):
        raise BadEnvelopeError("the completion is not a JSON object")
    usage = Usage.from_body(body.get("usage"))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadEnvelopeError("the completion has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise BadEnvelopeError("the first choice has no message")
    content, refusal = message.get("content"), message.get("refusal")
    model = body.get("model")
    reason = choices[0].get("finish_reason")
    return ChatReply(
        content=content if isinstance(content, str) else None,
        finish_reason=reason if isinstance(reason, str) else None,
        model=model if isinstance(model, str) else None,
        usage=usage,
        refusal=refusal if isinstance(refusal, str) and refusal else None,
    )


def extract_json_object(text: str, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return the JSON object in `text`: the whole text, a fenced block, or the first object in prose.

    With `required`, the first object holding all those keys wins over earlier ones (a model may
    quote an example before its answer).
    """
    text = text[:MAX_CONTENT_CHARS]
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    stripped = text.strip()
    sources = [stripped, *(block.strip() for block in _FENCE.findall(text))]
    for source in sources:
        try:
            value = json.loads(source)
        except (ValueError, RecursionError):  # deep nesting raises RecursionError, not ValueError
            continue
        if isinstance(value, dict):
            found.append(value)
    start, tried = text.find("{"), 0
    while start != -1 and tried < MAX_CANDIDATES:
        tried += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", end)
    for value in found:
        if all(key in value for key in required):
            return value
    if found:
        return found[0]
    raise NoJsonError("no JSON object in the answer")


def _content(reply: ChatReply, required: tuple[str, ...]) -> dict[str, Any]:
    if reply.refusal:
        raise RefusalError("the model refused")
    if not reply.content or not reply.content.strip():
        if reply.finish_reason == "length":
            raise TruncatedError("empty answer")
        raise NoJsonError("empty answer")
    try:
        return extract_json_object(reply.content, required=required)
    except NoJsonError:
        if reply.finish_reason == "length":
            raise TruncatedError("the answer was cut off") from None
        raise


def _errors(exc: ValidationError) -> str:
    # Field names and error types only: the offending values may echo alert text.
    return ", ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['type']}" for e in exc.errors())


def parse_summary(reply: ChatReply) -> str:
    """Return the summary in a summarize answer."""
    data = _content(reply, ("summary",))
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise InvalidAnswerError("summary: missing or not a string")
    summary = " ".join(summary.split())
    if len(summary) > SUMMARY_MAX_CHARS:
        raise InvalidAnswerError(f"summary: longer than {SUMMARY_MAX_CHARS} characters")
    return summary


def report_facts(plain_report: str) -> tuple[str, str]:
    """Return (incident id, outcome) from the plain report's first line."""
    head = plain_report.strip().splitlines()[0] if plain_report.strip() else ""
    match = _REPORT_HEAD.match(head.strip())
    if not match:
        raise UnverifiableReportError("the plain report has no 'Incident <id>: ... - <outcome>' line")
    return match["id"], match["outcome"]


def parse_report(reply: ChatReply, *, plain_report: str) -> str:
    """Return the report in a final-report answer, if it keeps the plain report's incident id and outcome.

    A guard against invented outcomes: the model rewrites the facts, it never decides them.
    """
    incident_id, outcome = report_facts(plain_report)
    data = _content(reply, ("report",))
    report = data.get("report")
    if not isinstance(report, str) or not report.strip():
        raise InvalidAnswerError("report: missing or not a string")
    report = report.strip()
    if len(report) > REPORT_MAX_CHARS:
        raise InvalidAnswerError(f"report: longer than {REPORT_MAX_CHARS} characters")
    if not re.search(rf"(?<![\w-]){re.escape(incident_id)}(?![\w-])", report):
        raise UnfaithfulReportError("report: the incident id is missing")
    if not re.search(rf"(?<![\w-]){re.escape(outcome)}(?![\w-])", report, re.IGNORECASE):
        raise UnfaithfulReportError("report: the outcome is missing")
    if "[REDACTED:" in report:
        # The plain report names who decided; a placeholder in their place is a worse report.
        raise UnfaithfulReportError("report: a redaction placeholder stands in for a fact")
    return report


def parse_diagnosis(reply: ChatReply, *, runbook: Runbook, summary: str) -> Analysis:
    """Return the validated Analysis in a diagnose answer; the action must be in `runbook`'s allow-list."""
    data = _content(reply, ("severity", "diagnosis", "recommended_action", "confidence"))
    action = data.get("recommended_action")
    severity = data.get("severity")
    confidence, diagnosis = data.get("confidence"), data.get("diagnosis")
    # Booleans are ints to Python and pydantic would read true as confidence 1.0.
    if isinstance(confidence, bool):
        raise InvalidAnswerError("confidence: not a number")
    try:
        analysis = Analysis.model_validate(
            {
                "severity": severity.strip().lower() if isinstance(severity, str) else severity,
                "summary": summary,
                "diagnosis": diagnosis.strip() if isinstance(diagnosis, str) else diagnosis,
                "recommended_action": action.strip() if isinstance(action, str) else action,
                "confidence": confidence,
                "analyzer": "llm",
                "runbook": runbook.name,
            }
        )
    except ValidationError as exc:
        raise InvalidAnswerError(_errors(exc)) from None
    if analysis.recommended_action not in runbook.actions:
        raise ActionNotAllowedError(f"recommended_action is not one of {', '.join(runbook.allowed_actions)}")
    return analysis


def raise_severity(analysis: Analysis, floor: Severity | None, why: str) -> Analysis:
    """Return `analysis` with its severity raised to `floor` when it is lower, saying why in the diagnosis."""
    if not floor or analysis.severity >= floor:
        return analysis
    note = f" Severity raised from {analysis.severity} to {floor}: {why}."
    diagnosis = analysis.diagnosis[: 4000 - len(note)] + note
    return Analysis.model_validate({**analysis.model_dump(), "severity": floor, "diagnosis": diagnosis})


@dataclass
class CallRecord:
    """What one AI step did, for the incident record: never the prompt, the answer or the key."""

    step: str
    analyzer: str = "rules"
    model: str | None = None
    prompt_version: str | None = None
    prompt_sha256: str | None = None
    latency_ms: int = 0
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    failed_requests: list[str] = field(default_factory=list)
    invalid_answers: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    redactions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe record."""
        return asdict(self)
