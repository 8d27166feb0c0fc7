"""Plain-text reports: the diagnostic report for warnings and the final incident report.

What comes from the alert and its analysis is redacted (include.redaction); the store keeps the
original, and the names of approvers are ours, so they stay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.models import Alert, Analysis
from include.redaction import redact_value
from include.runbooks import Runbook


def diagnostic_text(alert: Alert, analysis: Analysis, runbook: Runbook) -> str:
    """Return the diagnostic report posted for a warning."""
    action = runbook.action(analysis.recommended_action)
    summary, diagnosis = redact_value([analysis.summary, analysis.diagnosis])
    return (
        f"{summary}\n"
        f"Diagnosis ({analysis.analyzer}, confidence {analysis.confidence:.0%}): {diagnosis}\n"
        f"Suggested next step: {action.name} ({action.risk} risk) - {action.description}\n"
        f"Runbook: {runbook.title}. {runbook.grounding.splitlines()[0] if runbook.grounding else ''}"
    ).strip()


def outcome_of(*, severity: str, fixed: bool, escalated: bool, approval_state: str | None) -> str:
    """Name how an incident ended, from the branches that ran."""
    if fixed:
        return "fixed"
    if escalated:
        return f"escalated_{approval_state}" if approval_state else "escalated"
    if approval_state == "cancelled":
        return "cancelled"
    return {"critical": "contained", "warning": "ticketed", "info": "logged"}[severity]


def _minutes(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "n/a"
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def final_report_text(
    *,
    incident: dict[str, Any],
    timeline: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    approvals: list[dict[str, Any]],
) -> str:
    """Return the final report: what happened, who decided, what ran, and how long it took."""
    incident, actions = redact_value(incident), redact_value(actions)
    analysis = incident.get("analysis") or {}
    lines = [
        f"Incident {incident['id']}: {incident['error']} on {incident['device_id']}"
        f" - {incident.get('outcome') or 'open'}",
        f"Severity {incident.get('severity') or 'unknown'}; analyser {analysis.get('analyzer', 'n/a')}, "
        f"confidence {analysis.get('confidence', 0):.0%}",
        f"Diagnosis: {analysis.get('diagnosis', 'n/a')}",
    ]
    for record in approvals:
        voters = [
            f"{v['identity']} ({v['channel']}, {v['decision']})" for v in record["votes"] if v["accepted"]
        ]
        lines.append(
            f"Approval {record['id']} for {record['action']}: {record['state']}"
            + (f" by {', '.join(voters)}" if voters else "")
        )
    for action in actions:
        mode = (action.get("result") or {}).get("mode", "")
        lines.append(
            f"Action {action['action']} on {action['target']}: {action['state']}"
            + (f" ({mode})" if mode else "")
        )
    if incident.get("ticket_id"):
        lines.append(f"Ticket: {incident['ticket_id']}")
    lines.append("Timeline:")
    lines.extend(f"  {e['at']:%H:%M:%S} {e['kind']}" for e in timeline)
    lines.append(
        f"Time to acknowledge: {_minutes(incident['created_at'], incident.get('acknowledged_at'))}; "
        f"time to resolve: {_minutes(incident['created_at'], incident.get('resolved_at'))}"
    )
    return "\n".join(lines)
