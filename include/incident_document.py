"""An incident as the incident API, pages and metrics show it: state, who and when, MTTA and MTTR."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.vocabulary import TimelineKind


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def started_at(incident: dict[str, Any]) -> datetime:
    """Return when the incident began: the alert's start when the sender said, else its arrival."""
    raw = (incident.get("alert") or {}).get("started_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    arrived: datetime = incident["created_at"]
    return arrived


def seconds_between(start: datetime, end: datetime | None) -> float | None:
    """Return the seconds from `start` to `end` (never negative), or None when `end` is unknown."""
    return None if end is None else max(0.0, (end - start).total_seconds())


def incident_document(
    incident: dict[str, Any],
    *,
    timeline: list[dict[str, Any]],
    approvals: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    """Return the incident's JSON document (the incident API's shape)."""
    start = started_at(incident)
    escalation = next((e for e in timeline if e["kind"] == TimelineKind.ESCALATED), None)
    return {
        "incident_id": incident["id"],
        "dag_id": incident["dag_id"],
        "dag_run_id": incident["run_id"],
        "device_id": incident["device_id"],
        "error": incident["error"],
        "source": incident["source"],
        "severity": incident.get("severity"),
        "state": str(incident["state"]),
        "outcome": incident.get("outcome"),
        "started_at": _iso(start),
        "opened_at": _iso(incident["created_at"]),
        "acknowledged_at": _iso(incident.get("acknowledged_at")),
        "acknowledged_by": incident.get("acknowledged_by"),
        "escalated_at": _iso(escalation["at"]) if escalation else None,
        # Who pressed Escalate; an escalated approval (the run itself) has nobody.
        "escalated_by": (escalation["detail"] or {}).get("by") if escalation else None,
        "resolved_at": _iso(incident.get("resolved_at")),
        "resolved_by": incident.get("resolved_by"),
        "time_to_acknowledge_seconds": seconds_between(start, incident.get("acknowledged_at")),
        "time_to_resolve_seconds": seconds_between(start, incident.get("resolved_at")),
        "ticket_id": incident.get("ticket_id"),
        "analysis": incident.get("analysis"),
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
        "timeline": [
            {
                "at": _iso(e["at"]),
                "kind": e["kind"],
                "actor": (e.get("detail") or {}).get("by"),
                "detail": e["detail"],
            }
            for e in timeline
        ],
    }
