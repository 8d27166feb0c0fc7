"""An incident as the incident API, pages and metrics show it: state, who and when, MTTA and MTTR."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.vocabulary import TimelineKind

if TYPE_CHECKING:
    from include.store.incident_records import Incident, TimelineEntry


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def started_at(incident: Incident) -> datetime:
    """Return when the incident began: the alert's start when the sender said, else its arrival."""
    raw = incident.alert.get("started_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return incident.created_at


# The incident's own fields that open its document, in this order (the API's JSON keeps its key order).
_OWN_HEAD = (
    "incident_id",
    "dag_id",
    "dag_run_id",
    "device_id",
    "error",
    "source",
    "severity",
    "state",
    "outcome",
)


def seconds_between(start: datetime, end: datetime | None) -> float | None:
    """Return the seconds from `start` to `end` (never negative), or None when `end` is unknown."""
    return None if end is None else max(0.0, (end - start).total_seconds())


def incident_document(
    incident: Incident,
    *,
    timeline: list[TimelineEntry],
    approvals: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    """Return the incident's JSON document (the incident API's shape)."""
    start = started_at(incident)
    escalation = next((e for e in timeline if e.kind == TimelineKind.ESCALATED), None)
    own = incident.to_json()
    return {
        **{key: own[key] for key in _OWN_HEAD},
        "started_at": _iso(start),
        "opened_at": own["opened_at"],
        "acknowledged_at": own["acknowledged_at"],
        "acknowledged_by": own["acknowledged_by"],
        "escalated_at": _iso(escalation.at) if escalation else None,
        # Who pressed Escalate; an escalated approval (the run itself) has nobody.
        "escalated_by": escalation.by if escalation else None,
        "resolved_at": own["resolved_at"],
        "resolved_by": own["resolved_by"],
        "time_to_acknowledge_seconds": seconds_between(start, incident.acknowledged_at),
        "time_to_resolve_seconds": seconds_between(start, incident.resolved_at),
        "ticket_id": own["ticket_id"],
        "analysis": own["analysis"],
        "approvals": approvals,
        "actions": [
            {
                "action": a["action"],
                "target": a["target"],
                "state": a["state"],
                "dry_run": a["dry_run"],
                "started_at": _iso(a.get("started_at")),
                "finished_at": _iso(a.get("finished_at")),
            }
            for a in actions
        ],
        "timeline": [{"at": _iso(e.at), "kind": e.kind, "actor": e.by, "detail": e.detail} for e in timeline],
    }
