"""What PagerDuty and Jira are told about an incident: once each, redacted, nothing without a connection.

PagerDuty: the page triggers an alert (`dedup_key` = the incident id), acknowledging and resolving
send the same key, escalating re-triggers it at critical severity. Jira: the ticket (and an escalation
without one) opens an issue labelled with the incident id, whose key becomes the incident's ticket;
resolving comments on it. Every event sent is on the timeline (`pagerduty_event`, `jira_issue_opened`,
`jira_commented`), which is what makes a retried task skip what was already sent.
"""

from __future__ import annotations

import logging
from typing import Any

from include.redaction import redact_value
from include.store import IncidentStore
from include.vocabulary import IncidentState, Severity, TimelineKind

log = logging.getLogger(__name__)

TRIGGER, ACKNOWLEDGE, RESOLVE = "trigger", "acknowledge", "resolve"


def _sent(store: IncidentStore, incident_id: str, kind: str, **match: Any) -> dict[str, Any] | None:
    for event in store.incidents.timeline(incident_id):
        detail = event.detail
        if event.kind == kind and all(detail.get(k) == v for k, v in match.items()):
            return detail
    return None


def pagerduty_event(
    store: IncidentStore,
    incident_id: str,
    action: str,
    *,
    severity: str | None = None,
    reason: str = "page",
    once: bool = True,
) -> bool:
    """Send one Events API event for the incident; False when PagerDuty is off or it was sent before."""
    from incident_ops.integrations import pagerduty_on

    if not pagerduty_on():
        return False
    from incident_ops.hooks.pagerduty import SEVERITIES, IncidentPagerdutyHook
    from incident_ops.links import run_url_for

    if once and _sent(store, incident_id, TimelineKind.PAGERDUTY_EVENT, action=action, reason=reason):
        log.info("PagerDuty %s (%s) for %s was sent already", action, reason, incident_id)
        return False
    incident = store.incidents.get(incident_id)
    severity = SEVERITIES[Severity(severity or incident.severity or Severity.CRITICAL)]
    summary = (incident.analysis or {}).get("summary") or ""
    link = run_url_for(incident.dag_id, incident.run_id)
    IncidentPagerdutyHook().send_event(
        summary=redact_value(f"{incident.error} on {incident.device_id}"),
        severity=severity,
        source=redact_value(incident.device_id),
        action=action,
        dedup_key=incident_id,
        custom_details={"incident_id": incident_id, "summary": redact_value(summary), "reason": reason},
        links=[{"href": link, "text": "Airflow run"}],
    )
    store.incidents.add_event(
        incident_id, TimelineKind.PAGERDUTY_EVENT, {"action": action, "reason": reason, "severity": severity}
    )
    return True


def jira_issue(
    store: IncidentStore, incident_id: str, *, summary: str, description: str, run_link: str | None = None
) -> str | None:
    """Return the incident's Jira issue key, opening the issue unless it exists; None when Jira is off.

    The description is wiki-escaped (alert and model text never becomes markup); `run_link` is added
    as the product's own link.
    """
    from incident_ops.integrations import jira_on
    from include.jira_markup import jira_escape, link

    if not jira_on():
        return None
    from incident_ops.hooks.jira import IncidentJiraHook

    opened = _sent(store, incident_id, TimelineKind.JIRA_ISSUE_OPENED)
    if opened:
        return str(opened["key"])
    hook = IncidentJiraHook()
    # A retry after a lost answer finds the issue by its label instead of opening a second one.
    text = jira_escape(redact_value(description))
    if run_link:
        text += f"\n\n{link('Open the run in Airflow', run_link)}"
    key = hook.find_issue(incident_id) or hook.create_issue(
        label=incident_id, summary=redact_value(summary), description=text
    )
    store.incidents.update(incident_id, ticket_id=key)
    store.incidents.add_event(incident_id, TimelineKind.JIRA_ISSUE_OPENED, {"key": key})
    return key


def jira_comment(store: IncidentStore, incident_id: str, text: str, *, reason: str) -> bool:
    """Comment on the incident's Jira issue, once per `reason`; False without an issue or Jira."""
    from incident_ops.integrations import jira_on

    opened = _sent(store, incident_id, TimelineKind.JIRA_ISSUE_OPENED)
    if not opened or not jira_on():
        return False
    from incident_ops.hooks.jira import IncidentJiraHook

    if _sent(store, incident_id, TimelineKind.JIRA_COMMENTED, reason=reason):
        return False
    from include.jira_markup import jira_escape

    IncidentJiraHook().add_comment(str(opened["key"]), jira_escape(redact_value(text)))
    store.incidents.add_event(
        incident_id, TimelineKind.JIRA_COMMENTED, {"key": opened["key"], "reason": reason}
    )
    return True


def incident_resolved(store: IncidentStore, incident_id: str) -> None:
    """Tell PagerDuty and Jira that the incident is resolved; a failure is logged and on the timeline."""
    incident = store.incidents.get(incident_id)
    by = incident.resolved_by or "the run"
    text = f"Resolved by {by}: {incident.outcome or IncidentState.RESOLVED}."
    for name, send in (
        ("pagerduty", lambda: pagerduty_event(store, incident_id, RESOLVE, reason=IncidentState.RESOLVED)),
        ("jira", lambda: jira_comment(store, incident_id, text, reason=IncidentState.RESOLVED)),
    ):
        try:
            send()
        except Exception as exc:
            log.warning("Could not tell %s that %s is resolved: %s", name, incident_id, type(exc).__name__)
            store.incidents.add_event(
                incident_id, f"{name}_failed", {"on": "resolve", "error": type(exc).__name__}
            )
