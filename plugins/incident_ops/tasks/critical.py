"""The critical path: page, contain, ask for approval when the policy says so, fix or escalate."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from incident_ops.tasks import common
from include.names import ESCALATE, EXECUTE_FIX, REQUEST_APPROVAL
from include.vocabulary import ActionState, ApprovalState, Outcome, Severity, TimelineKind

if TYPE_CHECKING:
    from include.approval_policy import Caution
    from include.models import Alert

log = logging.getLogger(__name__)


def page_oncall(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Page the on-call engineer in Slack (this message starts the incident's thread) and PagerDuty.

    The page carries Acknowledge, Escalate and Resolve; with PagerDuty configured it also triggers
    an alert whose dedup_key is the incident id (once: a retry finds it on the timeline).
    """
    from incident_ops import incident_sync
    from incident_ops.incident_lifecycle import page_blocks_for
    from include.slack_blocks import incident_header

    alert, analysis = common.alert(ti), common.analysis(ti)
    store, incident_id = common.store(), common.incident_id(dag_run)
    delivery = common.deliver(
        dag_run,
        key="page",
        purpose="oncall",
        text=incident_header(alert, analysis),
        blocks=page_blocks_for(store, incident_id),
    )
    incident_sync.pagerduty_event(store, incident_id, incident_sync.TRIGGER, severity=analysis.severity)
    return delivery


def _resolved(dag_run: Any) -> Outcome | None:
    from incident_ops.resolution import resolved_before_fix

    resolved = resolved_before_fix(common.store(), dag_id=dag_run.dag_id, run_id=dag_run.run_id)
    if resolved is not None:
        log.info("The incident is resolved (%s); no fix for it", resolved)
    return resolved


def _caution(ti: Any) -> Caution:
    """Return what the caution policy requires of this run, against the rules' own analysis."""
    from include import rules_analyzer
    from include.approval_policy import caution
    from include.runbooks import get_runbook

    alert, analysis = common.alert(ti), common.analysis(ti)
    # The rules are deterministic: the same alert and inventory give the analysis ai_diagnose had.
    rules = rules_analyzer.analyze(alert, common.enrichment(ti))
    return caution(alert, rules=rules, proposed=analysis, runbook=get_runbook(analysis.runbook))


def approval_needed(ti: Any, dag_run: Any, **_: Any) -> str:
    """Route to a human approval whenever the caution policy gives a reason; else run the fix."""
    reasons = _caution(ti).reasons
    common.store().incidents.add_event(
        common.incident_id(dag_run), TimelineKind.APPROVAL_POLICY, {"reasons": reasons}
    )
    if reasons:
        log.info("Approval needed: %s", "; ".join(reasons))
        return REQUEST_APPROVAL
    return EXECUTE_FIX


def request_approval(ti: Any, dag_run: Any, **_: Any) -> str:
    """Create the approval record and post the request with Approve / Reject buttons."""
    from incident_ops import approval_lifecycle
    from include.runbooks import get_runbook

    analysis = common.analysis(ti)
    store = common.store()
    record = approval_lifecycle.request(
        store,
        dag_run=dag_run,
        incident_id=common.incident_id(dag_run),
        alert=common.alert(ti),
        analysis=analysis,
        runbook=get_runbook(analysis.runbook),
        reasons=_caution(ti).reasons,
    )
    # Resolved before the record existed: nothing was pending to cancel then.
    if _resolved(dag_run):
        approval_lifecycle.cancel_pending(store, dag_run.run_id)
    return record.id


def approval_decision(ti: Any, **_: Any) -> str | list[str]:
    """Route on the decision: approved runs the fix, rejected or expired escalates, cancelled skips both."""

    outcome = common.outcome(ti)
    assert outcome is not None  # required=True
    log.info("Approval %s is %s", outcome.approval_id, outcome.state)
    if outcome.state == ApprovalState.APPROVED:
        return EXECUTE_FIX
    if outcome.state in (ApprovalState.REJECTED, ApprovalState.EXPIRED):
        return ESCALATE
    return []


def _run_action(dag_run: Any, alert: Alert, action: str, *, purpose: str) -> dict[str, Any]:
    from incident_ops.service_calls import run_device_action

    store, incident_id = common.store(), common.incident_id(dag_run)
    # One key per run and action: a retry after a lost response never runs the action twice.
    key = f"{dag_run.dag_id}:{dag_run.run_id}:{action}"
    row, first = store.actions.begin(
        key=key, incident_id=incident_id, action=action, target=alert.device_id, dry_run=alert.dry_run
    )
    if not first:
        log.info("Action %s already %s under key %s; not running it again", action, row["state"], key)
        return {"action": action, "state": row["state"], "result": row["result"], "repeated": True}
    try:
        result = run_device_action(
            action=action, device_id=alert.device_id, idempotency_key=key, dry_run=alert.dry_run
        )
    except Exception as exc:
        store.actions.finish(key, state=ActionState.FAILED, result={"error": type(exc).__name__})
        raise
    store.actions.finish(key, state=ActionState.DONE, result={"purpose": purpose, **result})
    return {"action": action, "state": ActionState.DONE, "result": result, "repeated": False}


def execute_fix(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Run the recommended action on the device, unless the incident was resolved by hand meanwhile."""
    from airflow.sdk.exceptions import AirflowSkipException

    resolved = _resolved(dag_run)
    if resolved is not None:
        raise AirflowSkipException(f"the incident is resolved ({resolved}); the fix is not run")
    alert, analysis = common.alert(ti), common.analysis(ti)
    _check_approval(ti, dag_run, alert, analysis.recommended_action)
    outcome = _run_action(dag_run, alert, analysis.recommended_action, purpose="fix")
    common.deliver(
        dag_run,
        key="fix",
        purpose="oncall",
        text=f"Fix `{analysis.recommended_action}` done on "
        f"{alert.device_id} ({outcome['result'].get('mode', 'api')})",
        blocks=None,
    )
    return outcome


def _check_approval(ti: Any, dag_run: Any, alert: Alert, action: str) -> None:
    """Act only on what the store says was approved: the branch and XCom alone are not proof.

    When the policy needs a human, or a record was made for this run, an approved record for exactly
    this incident, action and digest must exist and still apply; otherwise nothing runs, the refusal
    is on the timeline, the secondary on-call is paged, and the task fails without retrying.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from incident_ops.approval_lifecycle import fix_subject
    from incident_ops.incident_lifecycle import escalate_refused_fix
    from include.approval_binding import action_digest, fix_refusal

    store, incident_id = common.store(), common.incident_id(dag_run)
    records = store.approvals.find(run_id=dag_run.run_id)
    if not records and not _caution(ti).reasons:
        return  # the policy needs no human, and none was asked
    record = next((r for r in records if r.action == action), None)
    problem = fix_refusal(
        record,
        incident_id=incident_id,
        action=action,
        digest=action_digest(*fix_subject(alert, action)),
        incident_resolved=_resolved(dag_run) is not None,
    )
    if problem is None:
        return
    store.incidents.add_event(incident_id, TimelineKind.FIX_REFUSED, {"action": action, "reason": problem})
    log.error("The fix %s was not run: %s", action, problem)
    try:
        escalate_refused_fix(store, incident_id)
    except Exception:  # the refusal stands even if paging fails; the task failure alerts too
        log.exception("Could not escalate the refused fix of %s", incident_id)
    raise AirflowFailException(f"the fix was not run: {problem}")


def automated_containment(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Run the runbook's low-risk containment at once, while humans look at the incident."""
    from include.runbooks import get_runbook

    alert, analysis = common.alert(ti), common.analysis(ti)
    containment = get_runbook(analysis.runbook).containment
    if containment is None:
        common.store().incidents.add_event(
            common.incident_id(dag_run), TimelineKind.CONTAINMENT_NONE, {"runbook": analysis.runbook}
        )
        return {"action": None, "state": ActionState.SKIPPED}
    return _run_action(dag_run, alert, containment, purpose="containment")


def escalate(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Escalate a rejected or expired approval: page the secondary on-call and open a ticket.

    The ticket is a Jira issue when `jira_default` is configured (one per incident, whoever opened
    it first), and PagerDuty is re-triggered at critical severity when configured.
    """
    from incident_ops import incident_sync
    from incident_ops.links import run_url
    from incident_ops.service_calls import open_ticket
    from include.slack_blocks import text_blocks

    alert, analysis = common.alert(ti), common.analysis(ti)
    outcome = common.outcome(ti)
    assert outcome is not None  # required=True
    store, incident_id = common.store(), common.incident_id(dag_run)
    title = f"Escalated: {alert.error} on {alert.device_id}"
    body = f"{analysis.summary}\nApproval {outcome.state}; {analysis.recommended_action} was not run."
    key = incident_sync.jira_issue(
        store,
        incident_id,
        summary=title,
        description=f"{body}\n\nDiagnosis: {analysis.diagnosis}",
        run_link=run_url(dag_run),
    )
    ticket = (
        {"mode": "jira", "ticket_id": key}
        if key
        else open_ticket(incident_id=incident_id, title=title, body=body, severity=analysis.severity)
    )
    store.incidents.update(incident_id, ticket_id=ticket["ticket_id"])
    store.incidents.add_event(
        incident_id, TimelineKind.ESCALATED, {"approval": outcome.state, "ticket_id": ticket["ticket_id"]}
    )
    incident_sync.pagerduty_event(
        store, incident_id, incident_sync.TRIGGER, severity=Severity.CRITICAL, reason=Outcome.ESCALATED
    )
    text = (
        f"Escalation: approval {outcome.state}, `{analysis.recommended_action}` not run on "
        f"{alert.device_id}. Ticket {ticket['ticket_id']}."
    )
    delivery = common.deliver(
        dag_run,
        key="escalate",
        purpose="secondary",
        text=text,
        blocks=text_blocks("Escalated to the secondary on-call", text),
    )
    return {"approval": outcome.state, "ticket_id": ticket["ticket_id"], "message": delivery}
