"""What the incident pages show: the list's counts and chart, one incident's chart, tables and report.

Everything is read from the store and redacted here, before a template sees it; the templates escape.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from include.daily_chart import daily_chart
from include.incident_stats import daily_series, human_duration, window_start
from include.redaction import redact_value
from include.store import utcnow
from include.timeline_chart import layout, timeline_points
from include.vocabulary import IncidentState

if TYPE_CHECKING:
    from include.store import Incident, IncidentStore

OPEN_LIMIT = 100
RECENT_LIMIT = 50
FILTERED_LIMIT = 200
CHART_DAYS = 7
WINDOWS = (("Last 24 h", 24), ("Last 7 days", 24 * 7))
REPORT_KEY = ":final_report"
ACTIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


def list_context(
    store: IncidentStore, *, dag_ids: set[str], state: str | None, severity: str | None
) -> dict[str, Any]:
    """Return the list: open and recent (or filtered) incidents, counts, MTTA and MTTR, the chart."""
    now = utcnow()
    if state:
        filtered = store.incidents.find(
            states=(state,), severity=severity, dag_ids=dag_ids, limit=FILTERED_LIMIT
        )
        sections = [("Incidents", filtered)]
    else:
        active = store.incidents.find(states=ACTIVE, severity=severity, dag_ids=dag_ids, limit=OPEN_LIMIT)
        recent = store.incidents.find(
            states=(IncidentState.RESOLVED,), severity=severity, dag_ids=dag_ids, limit=RECENT_LIMIT
        )
        sections = [("Open and acknowledged", active), ("Recently resolved", recent)]
    windows = [
        store.stats.window_stats(label, window_start(now, hours), dag_ids=dag_ids) for label, hours in WINDOWS
    ]
    days = daily_series(
        store.stats.daily_counts(window_start(now, 24 * CHART_DAYS), dag_ids=dag_ids),
        days=CHART_DAYS,
        today=now.date(),
    )
    return {
        "sections": [(title, redact_value([list_row(i) for i in rows])) for title, rows in sections],
        "counts": store.stats.state_counts(dag_ids=dag_ids),
        "windows": [
            {"stats": w, "mtta": human_duration(w.mtta_seconds), "mttr": human_duration(w.mttr_seconds)}
            for w in windows
        ],
        "chart": daily_chart(days),
        "days": days,
    }


def list_row(incident: Incident) -> dict[str, Any]:
    """Return what the incident list shows of an incident (redacted by the caller)."""
    return {
        "id": incident.id,
        "dag_id": incident.dag_id,
        "run_id": incident.run_id,
        "device_id": incident.device_id,
        "error": incident.error,
        "source": incident.source,
        "state": str(incident.state),
        "severity": str(incident.severity) if incident.severity else None,
        "outcome": incident.outcome,
        "created_at": incident.created_at,
        "acknowledged_at": incident.acknowledged_at,
        "resolved_at": incident.resolved_at,
    }


def final_report(messages: list[dict[str, Any]]) -> str | None:
    """Return the final report as posted in the incident's thread, or None before the run wrote it."""
    for message in messages:
        if str(message.get("key", "")).endswith(REPORT_KEY):
            blocks = message.get("blocks") or []
            text = (blocks[0].get("text") or {}).get("text", "") if blocks else message.get("text", "")
            # The block is Slack mrkdwn: its first line is the title, and &, <, > are entities.
            _, _, body = text.partition("\n")
            return html.unescape(body or text)
    return None


def incident_context(store: IncidentStore, incident_id: str) -> dict[str, Any]:
    """Return one incident's page: the document redacted, the chart, the report (raises NotFound)."""
    document = redact_value(store.incident_document(incident_id))
    messages = store.outbox.for_incident(incident_id)
    resolved = document["state"] == IncidentState.RESOLVED
    chart = layout(timeline_points(document, messages), now=utcnow(), resolved=resolved)
    analysis = document.get("analysis") or {}
    confidence = analysis.get("confidence")
    return {
        "incident": document,
        "analysis": analysis,
        "confidence": f"{confidence:.0%}" if isinstance(confidence, int | float) else None,
        "chart": chart,
        "mtta": human_duration(document["time_to_acknowledge_seconds"]),
        "mttr": human_duration(document["time_to_resolve_seconds"]),
        "report": redact_value(final_report(messages)),
        "model_calls": [e["detail"] for e in document["timeline"] if e["kind"] == "llm_call"],
    }
