"""Record a human's decision on an approval record, the same way from Slack, the web page and the API."""

from __future__ import annotations

import logging

from incident_ops.resume import end_waiting_sensors
from include.approval_policy import refusal
from include.store import Approval, IncidentStore

log = logging.getLogger(__name__)


def record_decision(
    store: IncidentStore,
    approval_id: str,
    *,
    identity: str,
    channel: str,
    decision: str,
    comment: str | None = None,
    role: str | None = None,
) -> Approval:
    """Check that `identity` may vote and count the vote; once decided, end the wait and update Slack.

    Raises `NotFound` for an unknown record and `VoteRefused` (kept in the audit trail) for a vote
    that does not count: not an allowed approver, a repeat, or a record already decided or expired.
    """
    record = store.get_approval(approval_id)
    why = refusal(
        identity=identity,
        channel=channel,
        role=role,
        approvers=record.approvers,
        requested_by=record.requested_by,
        forbid_self_approval=record.forbid_self_approval,
    )
    updated = store.cast_vote(
        approval_id,
        identity=identity,
        channel=channel,
        decision=decision,
        comment=comment,
        refused_because=why,
    )
    if updated.decided:
        announce_decision(store, updated)
    return updated


def announce_decision(store: IncidentStore, record: Approval) -> None:
    """Pass a decision made outside the run on: to the sensor waiting for it, then to the Slack message."""
    # First the waiting run (seconds matter), then the Slack message (may be slow or fail).
    end_waiting_sensors(record)
    refresh_approval_message(store, record)


def refresh_approval_message(store: IncidentStore, record: Approval) -> None:
    """Replace the Slack approval request with its outcome; a Slack failure never undoes the decision."""
    if not (record.slack_channel and record.slack_ts):
        return
    from incident_ops.links import record_url
    from incident_ops.messaging import update
    from include.slack_blocks import decided_blocks

    when = record.decided_at.strftime("%Y-%m-%d %H:%M:%S UTC") if record.decided_at else ""
    try:
        update(
            channel=record.slack_channel,
            ts=record.slack_ts,
            text=f"{record.action}: {record.state}",
            blocks=decided_blocks(
                action=record.action,
                device_id=store.get_incident(record.incident_id)["device_id"],
                state=record.state,
                deciders=record.deciders,
                when=when,
                record_url=record_url(record.id),
            ),
        )
    except Exception:
        log.exception("Could not update the Slack message of approval %s", record.id)
