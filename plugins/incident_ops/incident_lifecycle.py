"""Acknowledge, escalate and resolve an incident by hand: the same from a Slack button, `/incident`, the API.

Each action goes through :func:`act`, in this order: the incident must exist (`NotFound`), the person
must be a responder (a refusal is kept on the timeline), the action must change something (else
`Refused` with code ``conflict``); then the store records it first, and only then are the
on-call page, PagerDuty and Jira told (their failures are logged, never undo the action).

Resolving by hand does what a resolved alert does: the run's pending approval records are cancelled,
so the run goes on to `resolve_incident` without the fix (`execute_fix` and `request_approval` check
the incident's state for the runs that have not got that far).
"""

from __future__ import annotations

import logging
from typing import Any

from include.errors import Refusal, Refused
from include.responders import (
    ACKNOWLEDGE,
    CONFLICT,
    ESCALATE,
    MAX_REFUSED_ACTIONS,
    RESOLVE,
    past_the_cap,
    refused_attempts,
    responder_refusal,
    state_refusal,
)
from include.store import Incident, IncidentStore
from include.vocabulary import IncidentAction, IncidentState, OutboxState, Outcome, Severity, TimelineKind

log = logging.getLogger(__name__)

RESOLVED_BY_HAND = Outcome.RESOLVED_BY_HAND


def escalated_by(store: IncidentStore, incident_id: str) -> str | None:
    """Return who escalated the incident ("the run" for an escalated approval), or None."""
    for event in store.incidents.timeline(incident_id):
        if event.kind == TimelineKind.ESCALATED:
            return event.by or "the run"
    return None


def act(
    store: IncidentStore,
    incident_id: str,
    action: str,
    *,
    identity: str,
    channel: str,
    role: str | None = None,
) -> dict[str, Any]:
    """Take `action` (acknowledge, escalate, resolve) for `identity`; return the incident's document.

    Raises `NotFound` for an unknown incident and `Refused` for a refused or idle action.
    """
    from incident_ops import config

    incident = store.incidents.get(incident_id)
    policy = config.responder_policy()
    refusal = responder_refusal(policy, identity=identity, channel=channel, role=role)
    if refusal is not None:
        # Kept on the timeline up to a cap per person and incident, as refused votes per record.
        kept = store.incidents.add_event_unless(
            incident_id,
            TimelineKind.ACTION_REFUSED,
            {"action": action, "by": identity, "channel": channel, "reason": refusal.reason},
            full=lambda earlier: refused_attempts(policy, earlier, identity) >= MAX_REFUSED_ACTIONS,
        )
        if not kept:
            refusal = past_the_cap(refusal)
        raise Refused(refusal)
    idle = state_refusal(
        action, state=IncidentState(incident.state), escalated=escalated_by(store, incident_id) is not None
    )
    if idle is not None:
        raise Refused(idle)
    {ACKNOWLEDGE: _acknowledge, ESCALATE: _escalate, RESOLVE: _resolve}[IncidentAction(action)](
        store, incident, identity=identity, channel=channel
    )
    refresh_page(store, incident_id)
    return store.incident_document(incident_id)


def escalate_refused_fix(store: IncidentStore, incident_id: str) -> None:
    """Page the secondary on-call because the fix refused to act (its approval did not hold)."""
    if escalated_by(store, incident_id) is None:
        _escalate(store, store.incidents.get(incident_id), identity="execute_fix", channel="product")
        refresh_page(store, incident_id)


def _acknowledge(store: IncidentStore, incident: Incident, *, identity: str, channel: str) -> None:
    from incident_ops import incident_sync

    if not store.incidents.acknowledge(incident.id, by=identity):
        raise Refused(Refusal(CONFLICT, "the incident is no longer open"))
    _tell(
        store,
        incident.id,
        "pagerduty",
        lambda: incident_sync.pagerduty_event(
            store, incident.id, incident_sync.ACKNOWLEDGE, reason=IncidentState.ACKNOWLEDGED
        ),
    )


def _escalate(store: IncidentStore, incident: Incident, *, identity: str, channel: str) -> None:
    from incident_ops import config, incident_sync
    from incident_ops.links import run_url_for
    from incident_ops.messaging import deliver
    from include.slack_blocks import escalation_blocks

    incident_id = incident.id
    store.incidents.add_event(incident_id, TimelineKind.ESCALATED, {"by": identity, "channel": channel})
    # The fallback text is escaped when sent; the blocks carry the mention of who escalated.
    text = (
        f"Escalated by {identity}: {incident.error} on {incident.device_id} needs the secondary on-call now."
    )
    try:
        deliver(
            store,
            incident_id=incident_id,
            key=f"{incident.run_id}:escalate:by-hand",
            channel=config.channel_for("secondary"),
            text=text,
            blocks=escalation_blocks(by=identity, device_id=incident.device_id, error=incident.error),
        )
    except Exception:
        log.exception("Could not post the escalation of %s in Slack", incident_id)
    _tell(
        store,
        incident_id,
        "pagerduty",
        lambda: incident_sync.pagerduty_event(
            store, incident_id, incident_sync.TRIGGER, severity=Severity.CRITICAL, reason=Outcome.ESCALATED
        ),
    )
    analysis = incident.analysis or {}
    _tell(
        store,
        incident_id,
        "jira",
        lambda: incident_sync.jira_issue(
            store,
            incident_id,
            summary=f"Escalated: {incident.error} on {incident.device_id}",
            description=(
                f"{analysis.get('summary') or ''}\n\nDiagnosis: {analysis.get('diagnosis') or 'none yet'}\n\n"
                f"Escalated by {identity}."
            ),
            run_link=run_url_for(incident.dag_id, incident.run_id),
        ),
    )


def _resolve(store: IncidentStore, incident: Incident, *, identity: str, channel: str) -> None:
    from incident_ops import approval_lifecycle, incident_sync

    if not store.incidents.resolve(incident.id, outcome=RESOLVED_BY_HAND, by=identity):
        raise Refused(Refusal(CONFLICT, "the incident is already resolved"))
    cancelled = approval_lifecycle.cancel_pending(store, incident.run_id)
    log.info("Incident %s resolved by %s; cancelled %s", incident.id, identity, cancelled or "nothing")
    incident_sync.incident_resolved(store, incident.id)


def _tell(store: IncidentStore, incident_id: str, name: str, send: Any) -> None:
    """Run one outside notification; a failure is logged and kept on the timeline, never raised."""
    try:
        send()
    except Exception as exc:
        log.warning("Could not tell %s about %s: %s", name, incident_id, type(exc).__name__)
        store.incidents.add_event(incident_id, f"{name}_failed", {"error": type(exc).__name__})


# -- the on-call page --------------------------------------------------------------------------------


def page_blocks_for(store: IncidentStore, incident_id: str) -> list[dict[str, Any]]:
    """Render the incident's on-call page as its state stands now."""
    from incident_ops.links import run_url_for
    from include.models import Alert, Analysis
    from include.slack_blocks import page_blocks

    incident = store.incidents.get(incident_id)
    return page_blocks(
        Alert.model_validate(incident.alert),
        Analysis.model_validate(incident.analysis),
        run_url=run_url_for(incident.dag_id, incident.run_id),
        incident_id=incident_id,
        state=IncidentState(incident.state),
        acknowledged_by=incident.acknowledged_by,
        escalated_by=escalated_by(store, incident_id),
        resolved_by=incident.resolved_by,
    )


def refresh_page(store: IncidentStore, incident_id: str) -> bool:
    """Replace the posted on-call page with its current state; False when there is none to update."""
    from incident_ops.messaging import update
    from include.models import Alert, Analysis
    from include.slack_blocks import incident_header

    incident = store.incidents.get(incident_id)
    page = next(
        (m for m in store.outbox.for_incident(incident_id) if m["key"] == f"{incident.run_id}:page"), None
    )
    if page is None or page["state"] != OutboxState.SENT or not page["slack_ts"] or not incident.analysis:
        return False
    try:
        header = incident_header(
            Alert.model_validate(incident.alert), Analysis.model_validate(incident.analysis)
        )
        # The page starts the thread: its channel is the thread's.
        return update(
            channel=incident.slack_channel or page["channel"],
            ts=page["slack_ts"],
            text=f"{header} ({incident.state})",
            blocks=page_blocks_for(store, incident_id),
        )
    except Exception:
        log.exception("Could not update the on-call page of %s", incident_id)
        return False
