"""The approval lifecycle: request, decide, cancel, expire and announce an approval record.

Every change of an approval record goes through this module, whichever channel caused it (a task,
a Slack click, the record page, the JSON API, an alert resolved upstream), so each transition does
the same things in the same order (see docs/architecture.md, "The approval lifecycle"):

* the store records it first (a decision is never lost, whatever fails afterwards);
* a decision made outside the run is announced: the waiting ``wait_for_approval`` ends at once
  (in Airflow's metadata database, as Airflow's own human-in-the-loop route does), then the Slack
  request message shows the outcome;
* the run reads the outcome of the finished wait through :func:`read_outcome` only.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from include.store import Approval, IncidentStore
from include.vocabulary import ApprovalState

if TYPE_CHECKING:
    from include.models import Alert, Analysis
    from include.runbooks import Action, Runbook

log = logging.getLogger(__name__)


# -- request -----------------------------------------------------------------------------------------


def request(
    store: IncidentStore,
    *,
    dag_run: Any,
    incident_id: str,
    alert: Alert,
    analysis: Analysis,
    runbook: Runbook,
    reasons: list[str],
) -> Approval:
    """Create the run's approval record (once) and post the request with Approve / Reject buttons."""
    from incident_ops import config
    from incident_ops.links import record_url
    from incident_ops.messaging import deliver
    from incident_ops.resolution import resolved_before_fix
    from include.approval_binding import action_digest
    from include.slack_blocks import approval_blocks

    action: Action = runbook.action(analysis.recommended_action)
    policy = config.approver_policy()
    override = config.deadline_override_seconds()
    deadline = timedelta(seconds=override) if override else timedelta(minutes=runbook.deadline_minutes)
    record = store.approvals.create(
        incident_id=incident_id,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        action=action.name,
        risk=action.risk,
        reasons=reasons,
        quorum=runbook.quorum if action.risky else 1,
        approvers=policy.approvers_for(action.name),
        deadline=deadline,
        requested_by=getattr(dag_run, "triggering_user_name", None),
        forbid_self_approval=policy.forbid_self_approval,
        people=policy.person_index(),
        action_digest=action_digest(*fix_subject(alert, action.name)),
    )
    # Resolved before the record existed: the intake or the responder had nothing to cancel then.
    if not record.decided and resolved_before_fix(store, dag_id=dag_run.dag_id, run_id=dag_run.run_id):
        record = store.approvals.close(record.id, state=ApprovalState.CANCELLED)
    delivery = deliver(
        store,
        incident_id=incident_id,
        key=f"{dag_run.run_id}:approval:{record.id}",
        channel=config.channel_for("approvals"),
        text=f"Approval needed: {action.name} on {alert.device_id}",
        blocks=approval_blocks(
            approval_id=record.id,
            alert=alert,
            analysis=analysis,
            risk=action.risk,
            reasons=record.reasons,
            quorum=record.quorum,
            expires_at=record.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
            record_url=record_url(record.id),
        ),
    )
    if delivery.sent and delivery.ts:
        store.approvals.set_message(record.id, channel=delivery.channel, ts=delivery.ts)
        current = store.approvals.get(record.id)
        if current.decided:
            # Decided before the message's ts was stored, so nobody could update it yet. The run
            # itself is not waiting yet: only the message needs the news.
            announce(store, current, wake_waiting_task=False)
    log.info("Approval record %s pending until %s: %s", record.id, record.expires_at, record_url(record.id))
    return record


def fix_subject(alert: Alert, action: str) -> tuple[str, list[str], dict[str, Any]]:
    """Return what a fix acts on: the action, its targets and its parameters (what is approved)."""
    return action, [alert.device_id], {"dry_run": alert.dry_run}


# -- decide, cancel, expire --------------------------------------------------------------------------


def decide(
    store: IncidentStore,
    approval_id: str,
    *,
    identity: str,
    channel: str,
    decision: str,
    comment: str | None = None,
    role: str | None = None,
) -> Approval:
    """Count a person's vote (any channel) and announce the record once it is decided.

    Raises `NotFound` for an unknown record and `Refused` (kept in the audit trail) for a vote
    that does not count; `approval_policy.vote_refusal` says which.
    """
    record = store.approvals.cast_vote(
        approval_id, identity=identity, channel=channel, decision=decision, comment=comment, role=role
    )
    if record.decided:
        announce(store, record)
    return record


def cancel_pending(store: IncidentStore, run_id: str) -> list[str]:
    """Cancel a run's pending records (its alert was resolved upstream); return the ids cancelled."""
    cancelled = []
    for record in store.approvals.find(run_id=run_id, state=ApprovalState.PENDING):
        closed = store.approvals.close(record.id, state=ApprovalState.CANCELLED)
        if closed.state is ApprovalState.CANCELLED:
            cancelled.append(closed.id)
            announce(store, closed)
    return cancelled


def expire(store: IncidentStore, approval_id: str) -> Approval:
    """Close a record whose deadline passed; a vote that landed just before it keeps its decision."""
    record = store.approvals.close(approval_id, state=ApprovalState.EXPIRED)
    if record.state is ApprovalState.EXPIRED:
        # Called by the waiting task itself, which ends with this outcome: only Slack needs the news.
        announce(store, record, wake_waiting_task=False)
    return record


# -- announce ----------------------------------------------------------------------------------------


def announce(store: IncidentStore, record: Approval, *, wake_waiting_task: bool = True) -> None:
    """Pass a decision on: first to the task waiting for it (seconds matter), then to the Slack message."""
    if wake_waiting_task:
        from incident_ops.triggers.approval_outcome import end_waiting_tasks

        end_waiting_tasks(record)
    _refresh_message(store, record)


def _refresh_message(store: IncidentStore, record: Approval) -> None:
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
                device_id=store.incidents.get(record.incident_id).device_id,
                state=record.state,
                deciders=record.deciders,
                when=when,
                record_url=record_url(record.id),
            ),
        )
    except Exception:
        log.exception("Could not update the Slack message of approval %s", record.id)
