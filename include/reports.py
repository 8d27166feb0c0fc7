"""Plain-text reports: the diagnostic report for warnings and the final incident report.

What comes from the alert and its analysis is redacted (include.redaction); the store keeps the
original, and the names of approvers are ours, so they stay.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.models import Alert, Analysis
from include.redaction import redact_value
from include.runbooks import Runbook
from include.vocabulary import ApprovalState, IncidentState, Outcome, Severity

if TYPE_CHECKING:
    from include.store.incident_records import Incident, TimelineEntry


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


# What the run did for an incident it neither fixed nor escalated, by severity.
HANDLED = {
    Severity.CRITICAL: Outcome.CONTAINED,
    Severity.WARNING: Outcome.TICKETED,
    Severity.INFO: Outcome.LOGGED,
}


def outcome_of(
    *, severity: Severity, fixed: bool, escalated: bool, approval_state: ApprovalState | None
) -> Outcome:
    """Name how an incident ended, from the branches that ran."""
    if fixed:
        return Outcome.FIXED
    if escalated:
        return Outcome.escalated_after(approval_state)
    if approval_state == ApprovalState.CANCELLED:
        return Outcome.CANCELLED
    return HANDLED[severity]


def _minutes(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "n/a"
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def final_report_text(
    *,
    incident: Incident,
    timeline: list[TimelineEntry],
    actions: list[dict[str, Any]],
    approvals: list[dict[str, Any]],
) -> str:
    """Return the final report: what happened, who decided, what ran, and how long it took."""
    shown: dict[str, Any] = redact_value(
        {
            "id": incident.id,
            "error": incident.error,
            "device_id": incident.device_id,
            "outcome": incident.outcome,
            "severity": str(incident.severity) if incident.severity else None,
            "ticket_id": incident.ticket_id,
            "analysis": incident.analysis or {},
        }
    )
    actions = redact_value(actions)
    analysis: dict[str, Any] = shown["analysis"]
    lines = [
        f"Incident {shown['id']}: {shown['error']} on {shown['device_id']}"
        f" - {shown['outcome'] or IncidentState.OPEN}",
        f"Severity {shown['severity'] or 'unknown'}; analyser {analysis.get('analyzer', 'n/a')}, "
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
    if shown["ticket_id"]:
        lines.append(f"Ticket: {shown['ticket_id']}")
    lines.append("Timeline:")
    lines.extend(f"  {e.at:%H:%M:%S} {e.kind}" for e in timeline)
    lines.append(
        f"Time to acknowledge: {_minutes(incident.created_at, incident.acknowledged_at)}; "
        f"time to resolve: {_minutes(incident.created_at, incident.resolved_at)}"
    )
    return "\n".join(lines)
