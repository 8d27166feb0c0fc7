"""Prompts for the AI steps: versioned templates in include/prompts/, filled, redacted, with their schemas.

Values are redacted before they are encoded (the alert as a structure: by key and by content), and
the rendered messages once more, so nothing reaches the wire unredacted whatever field (label,
message, inventory note, runbook text) a secret arrived in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.models import SEVERITIES, Alert, Analysis, Enrichment
from include.redaction import Redactor
from include.runbooks import Runbook

__all__ = [
    "DIAGNOSE_PROMPT",
    "REPORT_PROMPT",
    "SUMMARIZE_PROMPT",
    "Prompt",
    "PromptError",
    "PromptTemplate",
    "build_diagnose_prompt",
    "build_report_prompt",
    "build_summarize_prompt",
    "diagnosis_schema",
    "load_prompt",
    "report_schema",
    "summary_schema",
]

PROMPT_DIR = Path(__file__).parent / "prompts"
DIAGNOSE_PROMPT = "diagnose.v1"
SUMMARIZE_PROMPT = "summarize.v1"
REPORT_PROMPT = "report.v1"
DIAGNOSIS_FIELDS = ("severity", "diagnosis", "recommended_action", "confidence")
_PROMPT_ID = re.compile(r"^[a-z_]+\.v\d+$")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SECTION = re.compile(r"^## (system|user)[ \t]*$", re.MULTILINE)
# Run options steer the workflow, not the diagnosis: they stay out of the prompt.
_ALERT_OMIT = frozenset({"require_approval", "dry_run"})


class PromptError(ValueError):
    """A prompt file is missing, malformed, or its placeholders do not match the values given."""


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt file: a system and a user message with ``{{name}}`` placeholders."""

    prompt_id: str
    system: str
    user: str
    sha256: str

    @property
    def placeholders(self) -> frozenset[str]:
        """Return the names of the placeholders in both messages."""
        return frozenset(_PLACEHOLDER.findall(self.system) + _PLACEHOLDER.findall(self.user))

    def render(self, values: dict[str, str]) -> tuple[str, str]:
        """Return (system, user) with every placeholder filled; the values must match exactly."""
        missing, unused = self.placeholders - set(values), set(values) - self.placeholders
        if missing or unused:
            raise PromptError(
                f"prompt {self.prompt_id}: missing values {sorted(missing)}, unused values {sorted(unused)}"
            )

        def fill(text: str) -> str:
            # One pass: a value that itself contains "{{x}}" (alert text) is never expanded.
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

        return fill(self.system), fill(self.user)


@functools.cache
def load_prompt(prompt_id: str, directory: Path = PROMPT_DIR) -> PromptTemplate:
    """Load prompt `prompt_id` (e.g. ``diagnose.v1``) from `directory`."""
    if not _PROMPT_ID.match(prompt_id):
        raise PromptError(f"prompt id {prompt_id!r} must look like name.vN")
    path = directory / f"{prompt_id}.md"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"prompt {prompt_id}: {exc.strerror}") from exc
    parts = _SECTION.split(_COMMENT.sub("", raw))
    # parts: [preamble, "system", text, "user", text]
    if len(parts) != 5 or parts[1] != "system" or parts[3] != "user" or parts[0].strip():
        raise PromptError(f"prompt {prompt_id}: needs exactly a '## system' then a '## user' section")
    system, user = parts[2].strip(), parts[4].strip()
    if not system or not user:
        raise PromptError(f"prompt {prompt_id}: empty section")
    return PromptTemplate(
        prompt_id=prompt_id, system=system, user=user, sha256=hashlib.sha256(raw.encode()).hexdigest()[:12]
    )


@dataclass(frozen=True)
class Prompt:
    """A rendered, redacted prompt ready to send, with the schema its answer must follow."""

    version: str
    sha256: str
    messages: list[dict[str, str]]
    schema_name: str
    schema: dict[str, Any]
    redactions: dict[str, int] = field(default_factory=dict)

    def response_format(self, kind: str = "json_schema") -> dict[str, Any] | None:
        """Return the request's ``response_format`` for `kind` (json_schema, json_object or none)."""
        if kind == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": self.schema_name, "strict": True, "schema": self.schema},
            }
        if kind == "json_object":
            return {"type": "json_object"}
        return None


def diagnosis_schema(runbook: Runbook) -> dict[str, Any]:
    """Return the JSON schema of a diagnosis; the action is an enum of the runbook's allow-list.

    Only keywords that strict structured-output servers accept: no bounds, no patterns. The answer
    is validated again, fully, by the Analysis model.
    """
    return {
        "type": "object",
        "properties": {
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "diagnosis": {"type": "string", "description": "The likely cause and why, in 2 to 5 sentences."},
            "recommended_action": {"type": "string", "enum": runbook.allowed_actions},
            "confidence": {"type": "number", "description": "From 0 to 1."},
        },
        "required": list(DIAGNOSIS_FIELDS),
        "additionalProperties": False,
    }


def summary_schema() -> dict[str, Any]:
    """Return the JSON schema of a summary."""
    return {
        "type": "object",
        "properties": {"summary": {"type": "string", "description": "At most three sentences."}},
        "required": ["summary"],
        "additionalProperties": False,
    }


def report_schema() -> dict[str, Any]:
    """Return the JSON schema of a final report; its length bound is checked by parse_report."""
    return {
        "type": "object",
        "properties": {
            "report": {
                "type": "string",
                "description": "The incident report, plain text, under 2500 characters.",
            }
        },
        "required": ["report"],
        "additionalProperties": False,
    }


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _alert_json(alert: Alert, redactor: Redactor, counts: Counter[str]) -> str:
    data = {k: v for k, v in alert.to_xcom().items() if k not in _ALERT_OMIT and v not in (None, {}, [])}
    return _json(redactor.redact_value(data, counts))


def _enrichment_json(enrichment: Enrichment, redactor: Redactor, counts: Counter[str]) -> str:
    data = {k: v for k, v in enrichment.to_xcom().items() if v is not None and k != "source"}
    return _json(redactor.redact_value(data, counts))


def _severity_guidance(runbook: Runbook) -> str:
    lines = [f"- Default severity for this runbook: {runbook.default_severity}."]
    for metric, limit in sorted(runbook.critical_above.items()):
        lines.append(f"- Critical when {metric} is above {limit:g}.")
    if runbook.critical_errors:
        lines.append(f"- Critical by itself: {', '.join(runbook.critical_errors)}.")
    lines.append("- A sender's severity hint may raise the severity, never lower it.")
    return "\n".join(lines)


def _actions(runbook: Runbook) -> str:
    actions = (runbook.actions[name] for name in runbook.allowed_actions)
    return "\n".join(f"- {a.name} ({a.risk} risk): {a.description}" for a in actions)


def _finish(
    template: PromptTemplate,
    values: dict[str, str],
    redactor: Redactor,
    counts: Counter[str],
    schema_name: str,
    schema: dict[str, Any],
) -> Prompt:
    system, user = template.render(values)
    # Once more on the rendered messages: what the values did not carry (runbook text) is covered too;
    # what was redacted already is left as it is and not counted twice.
    messages = [
        {"role": "system", "content": redactor.redact_value(system, counts)},
        {"role": "user", "content": redactor.redact_value(user, counts)},
    ]
    return Prompt(
        version=template.prompt_id,
        sha256=template.sha256,
        messages=messages,
        schema_name=schema_name,
        schema=schema,
        redactions=dict(counts),
    )


def build_summarize_prompt(
    alert: Alert,
    enrichment: Enrichment,
    runbook: Runbook,
    *,
    redactor: Redactor,
    prompt_id: str = SUMMARIZE_PROMPT,
) -> Prompt:
    """Return the redacted summarize prompt for an alert."""
    counts: Counter[str] = Counter()
    values = {
        "runbook_name": runbook.name,
        "runbook_title": runbook.title,
        "alert": _alert_json(alert, redactor, counts),
        "enrichment": _enrichment_json(enrichment, redactor, counts),
    }
    return _finish(load_prompt(prompt_id), values, redactor, counts, "incident_summary", summary_schema())


def build_diagnose_prompt(
    alert: Alert,
    enrichment: Enrichment,
    runbook: Runbook,
    *,
    rules: Analysis,
    summary: str | None,
    redactor: Redactor,
    prompt_id: str = DIAGNOSE_PROMPT,
) -> Prompt:
    """Return the redacted diagnose prompt: alert, inventory, the runbook's grounding and allowed actions."""
    counts: Counter[str] = Counter()
    reading = (
        f"severity {rules.severity}, action {rules.recommended_action}, confidence "
        f"{rules.confidence:.2f}. {rules.diagnosis}"
    )
    values = {
        "runbook_name": runbook.name,
        "runbook_title": runbook.title,
        "runbook_version": str(runbook.version),
        "grounding": runbook.grounding or "(none)",
        "severity_guidance": _severity_guidance(runbook),
        "actions": _actions(runbook),
        "action_names": " | ".join(runbook.allowed_actions),
        "rules_reading": redactor.redact_value(reading, counts),
        "summary": redactor.redact_value(summary or "(none)", counts),
        "alert": _alert_json(alert, redactor, counts),
        "enrichment": _enrichment_json(enrichment, redactor, counts),
    }
    schema = diagnosis_schema(runbook)
    return _finish(load_prompt(prompt_id), values, redactor, counts, "incident_diagnosis", schema)


def build_report_prompt(plain_report: str, *, redactor: Redactor, prompt_id: str = REPORT_PROMPT) -> Prompt:
    """Return the redacted final-report prompt: the plain report is the only source of facts."""
    counts: Counter[str] = Counter()
    values = {"plain_report": redactor.redact_value(plain_report.strip(), counts)}
    return _finish(load_prompt(prompt_id), values, redactor, counts, "incident_report", report_schema())
