"""A postmortem draft in Markdown, from the incident document: the facts always come from the store.

The model may write the summary's narrative (plugins' incident_ops.postmortem); every other section
is built here from the record, so a model can never change the timeline, the decisions or the times.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from include.incident_stats import human_duration
from include.redaction import redact_value
from include.vocabulary import ActionState, IncidentState, Outcome

# Characters that Markdown (and the HTML it may be rendered to) would read as markup.
_MARKUP = re.compile(r"([\\`*_\[\]{}<>#|!~])")


def md(value: Any) -> str:
    """Return `value` as inert Markdown text on one line: markup characters escaped, newlines joined."""
    text = "" if value is None else str(value)
    return _MARKUP.sub(r"\\\1", " ".join(text.split()))


def _confirmed_by(approvals: list[dict[str, Any]]) -> list[str]:
    return [
        vote["person"]
        for record in approvals
        for vote in record.get("votes", [])
        if vote.get("accepted") and vote.get("decision") == "approve"
    ]


def follow_ups(document: dict[str, Any]) -> list[str]:
    """Return the open follow-ups the record calls for (unchecked boxes for the team to work through)."""
    items = []
    if document["state"] != IncidentState.RESOLVED:
        items.append("Resolve the incident: it is still " + document["state"] + ".")
    outcome = document.get("outcome") or ""
    if outcome.startswith(Outcome.ESCALATED):
        ticket = document.get("ticket_id")
        items.append("Carry out or close the escalated fix" + (f" (ticket {md(ticket)})." if ticket else "."))
    for action in document.get("actions") or []:
        if action.get("state") == ActionState.FAILED:
            items.append(f"Find out why `{md(action['action'])}` on {md(action['target'])} failed.")
        elif action.get("dry_run"):
            items.append(f"`{md(action['action'])}` ran as a dry run: check {md(action['target'])} on site.")
    for entry in document.get("timeline") or []:
        detail = entry.get("detail") or {}
        if entry["kind"] == "llm_call" and detail.get("fallback_reason"):
            step, why = md(detail.get("step")), md(detail["fallback_reason"])
            items.append(f"The {step} step fell back to the rules ({why}): check the model connection.")
        if entry["kind"] == "task_failed":
            items.append(f"A task failed ({md(detail.get('task_id'))}): see the DAG run's logs.")
    runbook = (document.get("analysis") or {}).get("runbook")
    if runbook:
        items.append(f"Review runbook {md(runbook)} against what happened.")
    return items


def plain_summary(document: dict[str, Any]) -> str:
    """Return the summary written from the record alone (no model)."""
    analysis = document.get("analysis") or {}
    outcome = document.get("outcome") or "still open"
    return (
        f"Incident {document['incident_id']}: {document['error']} on {document['device_id']} "
        f"({document.get('severity') or 'severity unknown'}). {analysis.get('summary') or ''} "
        f"Outcome: {outcome}."
    )


def postmortem_markdown(
    document: dict[str, Any], *, narrative: str | None, written_by: str, run_url: str, now: datetime
) -> str:
    """Return the postmortem draft of an incident document (redacted here; `narrative` from the model)."""
    doc = redact_value(document)
    analysis = doc.get("analysis") or {}
    resolved = doc.get("resolved_at")
    duration = human_duration(doc.get("time_to_resolve_seconds")) if resolved else "ongoing"
    lines = [
        f"# Postmortem draft: incident {md(doc['incident_id'])}",
        "",
        f"_Draft generated {now.strftime('%Y-%m-%d %H:%M UTC')} from the incident record; review it before "
        "sharing._",
        "",
        "## Summary",
        "",
        md(narrative) if narrative else md(plain_summary(doc)),
        "",
        f"_Summary written by {md(written_by)}; the sections below are the record itself._",
        "",
        "## Impact",
        "",
        f"- Device: {md(doc['device_id'])}",
        f"- Error: `{md(doc['error'])}`",
        f"- Severity: {md(doc.get('severity') or 'unknown')}",
        f"- Alert source: {md(doc['source'])}",
        f"- Started: {md(doc.get('started_at'))}",
        f"- Resolved: {md(doc.get('resolved_at') or 'not yet')}",
        f"- Duration: {duration}",
        f"- Outcome: {md(doc.get('outcome') or IncidentState.OPEN)}",
        "",
        "## Timeline",
        "",
        "| Time (UTC) | Event | Who | Detail |",
        "|---|---|---|---|",
    ]
    for entry in doc.get("timeline") or []:
        detail = ", ".join(f"{k}={v}" for k, v in (entry.get("detail") or {}).items() if k != "by")
        lines.append(
            f"| {md(entry['at'])} | {md(entry['kind'])} | {md(entry.get('actor') or '')} | {md(detail)} |"
        )
    confirmed = _confirmed_by(doc.get("approvals") or [])
    lines += [
        "",
        "## Root cause",
        "",
        md(analysis.get("diagnosis") or "Not diagnosed."),
        "",
        f"- Diagnosed by: {md(analysis.get('analyzer') or 'n/a')}"
        + (
            f", confidence {analysis['confidence']:.0%}"
            if isinstance(analysis.get("confidence"), int | float)
            else ""
        ),
        "- Confirmed by: " + (md(", ".join(confirmed)) if confirmed else "nobody (no approval confirmed it)"),
        "",
        "## Actions taken",
        "",
    ]
    actions = doc.get("actions") or []
    if actions:
        lines += ["| Action | Target | State | Dry run | Finished |", "|---|---|---|---|---|"]
        for a in actions:
            dry = "yes" if a.get("dry_run") else "no"
            finished = md(a.get("finished_at") or "")
            lines.append(
                f"| `{md(a['action'])}` | {md(a['target'])} | {md(a['state'])} | {dry} | {finished} |"
            )
    else:
        lines.append("None.")
    lines += ["", "## Decisions", ""]
    decisions = []
    if doc.get("acknowledged_by"):
        decisions.append(f"- Acknowledged by {md(doc['acknowledged_by'])} at {md(doc['acknowledged_at'])}")
    for record in doc.get("approvals") or []:
        votes = [
            f"{md(v['decision'])} by {md(v['person'])} ({md(v['channel'])}, {md(v['at'])})"
            for v in record.get("votes", [])
            if v.get("accepted")
        ]
        decisions.append(
            f"- Approval {md(record['id'])} for `{md(record['action'])}` ({md(record['risk'])} risk): "
            f"{md(record['state'])}" + (f"; {'; '.join(votes)}" if votes else "")
        )
    if doc.get("resolved_by"):
        decisions.append(f"- Resolved by {md(doc['resolved_by'])}")
    lines += decisions or ["No decision by a person is recorded."]
    lines += [
        "",
        "## Response times",
        "",
        f"- Time to acknowledge (MTTA): {human_duration(doc.get('time_to_acknowledge_seconds'))}",
        f"- Time to resolve (MTTR): {human_duration(doc.get('time_to_resolve_seconds'))}",
        "",
        "## Open follow-ups",
        "",
    ]
    lines += [f"- [ ] {item}" for item in follow_ups(doc)] or ["None recorded."]
    lines += ["", "## Links", "", f"- DAG run: <{run_url}>", ""]
    return "\n".join(lines)


def draft_digest(plain_report: str, *, prompt_id: str) -> str:
    """Return the digest of what a postmortem narrative is written from: the plain report and prompt."""
    return hashlib.sha256(f"{prompt_id}\n{plain_report}".encode()).hexdigest()
