"""The callables behind the `incident_response` DAG's tasks.

Each is small: it validates its inputs from XCom, calls the domain code in `include/` and the hooks,
writes what happened to the incident store, and returns a small JSON document. All of them are
safe to retry: ids are deterministic, messages and actions carry idempotency keys.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from incident_ops.links import record_url, run_url

if TYPE_CHECKING:
    from include.models import Alert, Analysis
    from include.store import IncidentStore

log = logging.getLogger(__name__)

# Task ids are part of the contract (DESIGN.md §1): callables refer to them by name.
INGEST, ENRICH, SUMMARIZE, DIAGNOSE = "ingest", "enrich", "ai_summarize", "ai_diagnose"
REQUEST_APPROVAL, WAIT_FOR_APPROVAL = "request_approval", "wait_for_approval"
EXECUTE_FIX, ESCALATE, CONTAINMENT = "execute_fix", "escalate", "automated_containment"
SEVERITY_ROUTES = {
    "critical": ["page_oncall", CONTAINMENT],
    "warning": ["create_ticket"],
    "info": ["log_only"],
}


def _store() -> IncidentStore:
    from incident_ops.hooks.incident_store import get_store

    return get_store()


def _incident_id(dag_run) -> str:
    from include.store import incident_id_for

    return incident_id_for(dag_run.dag_id, dag_run.run_id)


def _alert(ti) -> Alert:
    from include.models import Alert

    return Alert.from_xcom(ti.xcom_pull(task_ids=INGEST))


def _analysis(ti) -> Analysis:
    from include.models import Analysis

    return Analysis.from_xcom(ti.xcom_pull(task_ids=DIAGNOSE))


def _outcome(ti, *, required: bool = True):
    """Return wait_for_approval's outcome (None when it was skipped and not `required`)."""
    import json

    from include.models import ApprovalOutcome

    value = ti.xcom_pull(task_ids=WAIT_FOR_APPROVAL)
    if value is None and not required:
        return None
    # When the trigger ends the sensor itself (TaskSuccessEvent), Airflow stores the XCom JSON-encoded.
    if isinstance(value, str):
        value = json.loads(value)
    return ApprovalOutcome.from_xcom(value)


def _deliver(dag_run, *, key: str, purpose: str, text: str, blocks: list[dict] | None) -> dict[str, Any]:
    from incident_ops import config
    from incident_ops.messaging import deliver

    delivery = deliver(
        _store(),
        incident_id=_incident_id(dag_run),
        key=f"{dag_run.run_id}:{key}",
        channel=config.channel_for(purpose),
        text=text,
        blocks=blocks,
    )
    return {"key": delivery.key, "sent": delivery.sent, "channel": delivery.channel, "ts": delivery.ts}


# -- intake and analysis ---------------------------------------------------------------------------


def ingest(params: dict[str, Any], dag_run, **_: Any) -> dict[str, Any]:
    """Validate the alert (the run's conf) and open the incident, unless it repeats an open one.

    A repeat (an open incident of another run has the same fingerprint) and an alert its sender
    resolved before this run started end the run here: every later task is skipped, nobody is
    paged, and the run succeeds.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from include.alert_sources import CONF_KEYS, unknown_conf_keys, unknown_conf_keys_allowed
    from include.models import Alert

    values = {k: v for k, v in params.items() if v is not None}
    ignored = unknown_conf_keys(values) if unknown_conf_keys_allowed() else []
    if ignored:
        log.warning("Ignoring conf keys the DAG does not declare: %s", ", ".join(ignored))
        values = {k: v for k, v in values.items() if k in CONF_KEYS}
    alert = Alert.model_validate(values)
    store = _store()
    opening = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "incident_key": alert.incident_key}
    if alert.fingerprint:
        incident_id, duplicate_of = store.open_incident_unless_duplicate(**opening, alert=alert.to_xcom())
        if duplicate_of:
            log.info("Alert %s is already handled by open incident %s", alert.fingerprint, duplicate_of)
            raise AirflowSkipException(f"duplicate of open incident {duplicate_of}")
    else:
        incident_id = store.open_incident(**opening, alert=alert.to_xcom())
    if ignored:
        store.add_event(incident_id, "ignored_conf_keys", {"keys": ignored})
    intake = store.get_alert_run(dag_run.run_id)
    if intake is not None and intake["state"] == "resolved":
        store.resolve_incident(incident_id, outcome="resolved_upstream")
        log.info("The sender resolved alert %s before this run started; nothing to do", alert.fingerprint)
        raise AirflowSkipException("the alert was resolved before the run started")
    log.info("Incident %s opened for %s on %s", incident_id, alert.error, alert.device_id)
    return alert.to_xcom()


def enrich(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Look the device up in the inventory: the inventory API when configured, else the shipped file."""
    from incident_ops.hooks.http_services import INVENTORY_CONN_ID, connection_exists, lookup_device
    from include import inventory
    from include.models import Enrichment

    alert = _alert(ti)
    if connection_exists(INVENTORY_CONN_ID):
        record = lookup_device(alert.device_id)
        enrichment = (
            inventory.enrichment_from_record(alert.device_id, record, source="inventory-api")
            if record
            else Enrichment(device_id=alert.device_id, known=False, source="inventory-api")
        )
    else:
        enrichment = inventory.lookup(alert.device_id)
    _store().add_event(
        _incident_id(dag_run),
        "enriched",
        {"known": enrichment.known, "site": enrichment.site, "source": enrichment.source},
    )
    return enrichment.to_xcom()


def ai_summarize(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Summarise the alert for humans."""
    from incident_ops.analysis import summarize
    from include.models import Enrichment

    alert, enrichment = _alert(ti), Enrichment.from_xcom(ti.xcom_pull(task_ids=ENRICH))
    document = summarize(alert, enrichment)
    if "llm" in document:  # a model is configured: record how it answered (never the prompt or answer)
        _store().add_event(_incident_id(dag_run), "llm_call", document["llm"])
    return document


def ai_diagnose(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Diagnose the incident and recommend an action from the runbook."""
    from incident_ops.analysis import diagnose_with_record
    from include.models import Enrichment

    alert, enrichment = _alert(ti), Enrichment.from_xcom(ti.xcom_pull(task_ids=ENRICH))
    analysis, record = diagnose_with_record(alert, enrichment, ti.xcom_pull(task_ids=SUMMARIZE))
    store, incident_id = _store(), _incident_id(dag_run)
    store.update_incident(incident_id, severity=analysis.severity, analysis=analysis.to_xcom())
    if record["fallback_reason"] != "not_configured":
        # Which analyser answered, the model, latency, tokens and any fallback reason.
        store.add_event(incident_id, "llm_call", record)
    store.add_event(
        incident_id,
        "diagnosed",
        {
            "analyzer": analysis.analyzer,
            "severity": analysis.severity,
            "action": analysis.recommended_action,
            "confidence": analysis.confidence,
        },
    )
    return analysis.to_xcom()


def analyze_severity(ti, **_: Any) -> list[str]:
    """Route the run by severity: critical pages and contains, warning tickets, info logs."""
    analysis = _analysis(ti)
    log.info("Severity %s (%s, confidence %.2f)", analysis.severity, analysis.analyzer, analysis.confidence)
    return SEVERITY_ROUTES[analysis.severity]


# -- critical path ---------------------------------------------------------------------------------


def page_oncall(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Page the on-call engineer in Slack; this message starts the incident's thread."""
    from include.slack_blocks import incident_header, page_blocks

    alert, analysis = _alert(ti), _analysis(ti)
    return _deliver(
        dag_run,
        key="page",
        purpose="oncall",
        text=incident_header(alert, analysis),
        blocks=page_blocks(alert, analysis, run_url=run_url(dag_run)),
    )


def approval_needed(ti, dag_run, **_: Any) -> str:
    """Route to a human approval when the action is risky, confidence is low, or the run asks."""
    from include.approval_policy import approval_reasons
    from include.runbooks import get_runbook

    alert, analysis = _alert(ti), _analysis(ti)
    reasons = approval_reasons(alert, analysis, get_runbook(analysis.runbook))
    _store().add_event(_incident_id(dag_run), "approval_policy", {"reasons": reasons})
    if reasons:
        log.info("Approval needed: %s", "; ".join(reasons))
        return REQUEST_APPROVAL
    return EXECUTE_FIX


def request_approval(ti, dag_run, **_: Any) -> str:
    """Create the approval record and post the request with Approve / Reject buttons."""
    from incident_ops import config
    from incident_ops.decisions import refresh_approval_message
    from incident_ops.messaging import deliver
    from include.approval_policy import approval_reasons
    from include.runbooks import get_runbook
    from include.slack_blocks import approval_blocks

    alert, analysis = _alert(ti), _analysis(ti)
    runbook = get_runbook(analysis.runbook)
    action = runbook.action(analysis.recommended_action)
    policy = config.approver_policy()
    override = config.deadline_override_seconds()
    deadline = timedelta(seconds=override) if override else timedelta(minutes=runbook.deadline_minutes)
    store, incident_id = _store(), _incident_id(dag_run)
    record = store.create_approval(
        incident_id=incident_id,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        action=action.name,
        risk=action.risk,
        reasons=approval_reasons(alert, analysis, runbook),
        quorum=runbook.quorum if action.risky else 1,
        approvers=policy.approvers_for(action.name),
        deadline=deadline,
        requested_by=getattr(dag_run, "triggering_user_name", None),
        forbid_self_approval=policy.forbid_self_approval,
    )
    # The sender resolved the alert before the record existed, so the webhook had nothing to cancel.
    intake = store.get_alert_run(dag_run.run_id)
    if intake and intake["state"] == "resolved":
        record = store.close_approval(record.id, state="cancelled")
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
    if delivery.sent:
        store.set_approval_message(record.id, channel=delivery.channel, ts=delivery.ts)
        # A decision that landed before the message's ts was stored could not update it: do it now.
        current = store.get_approval(record.id)
        if current.decided:
            refresh_approval_message(store, current)
    log.info("Approval record %s pending until %s: %s", record.id, record.expires_at, record_url(record.id))
    return record.id


def approval_decision(ti, **_: Any) -> str | list[str]:
    """Route on the decision: approved runs the fix, rejected or expired escalates, cancelled skips both."""
    outcome = _outcome(ti)
    log.info("Approval %s is %s", outcome.approval_id, outcome.state)
    if outcome.state == "approved":
        return EXECUTE_FIX
    if outcome.state in ("rejected", "expired"):
        return ESCALATE
    return []


def _run_action(dag_run, alert: Alert, action: str, *, purpose: str) -> dict[str, Any]:
    from incident_ops.hooks.http_services import run_device_action

    store, incident_id = _store(), _incident_id(dag_run)
    # One key per run and action: a retry after a lost response never runs the action twice.
    key = f"{dag_run.dag_id}:{dag_run.run_id}:{action}"
    row, first = store.begin_action(
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
        store.finish_action(key, state="failed", result={"error": type(exc).__name__})
        raise
    store.finish_action(key, state="done", result={"purpose": purpose, **result})
    return {"action": action, "state": "done", "result": result, "repeated": False}


def execute_fix(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Run the recommended action on the device."""
    alert, analysis = _alert(ti), _analysis(ti)
    outcome = _run_action(dag_run, alert, analysis.recommended_action, purpose="fix")
    _deliver(
        dag_run,
        key="fix",
        purpose="oncall",
        text=f"Fix `{analysis.recommended_action}` done on "
        f"{alert.device_id} ({outcome['result'].get('mode', 'api')})",
        blocks=None,
    )
    return outcome


def automated_containment(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Run the runbook's low-risk containment at once, while humans look at the incident."""
    from include.runbooks import get_runbook

    alert, analysis = _alert(ti), _analysis(ti)
    containment = get_runbook(analysis.runbook).containment
    if containment is None:
        _store().add_event(_incident_id(dag_run), "containment_none", {"runbook": analysis.runbook})
        return {"action": None, "state": "none"}
    return _run_action(dag_run, alert, containment, purpose="containment")


def escalate(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Escalate a rejected or expired approval: page the secondary on-call and open a ticket."""
    from incident_ops.hooks.http_services import open_ticket
    from include.slack_blocks import text_blocks

    alert, analysis = _alert(ti), _analysis(ti)
    outcome = _outcome(ti)
    store, incident_id = _store(), _incident_id(dag_run)
    ticket = open_ticket(
        incident_id=incident_id,
        title=f"Escalated: {alert.error} on {alert.device_id}",
        body=f"{analysis.summary}\nApproval {outcome.state}; {analysis.recommended_action} was not run.",
        severity=analysis.severity,
    )
    store.update_incident(incident_id, ticket_id=ticket["ticket_id"])
    store.add_event(incident_id, "escalated", {"approval": outcome.state, "ticket_id": ticket["ticket_id"]})
    text = (
        f"Escalation: approval {outcome.state}, `{analysis.recommended_action}` not run on "
        f"{alert.device_id}. Ticket {ticket['ticket_id']}."
    )
    delivery = _deliver(
        dag_run,
        key="escalate",
        purpose="secondary",
        text=text,
        blocks=text_blocks("Escalated to the secondary on-call", text),
    )
    return {"approval": outcome.state, "ticket_id": ticket["ticket_id"], "message": delivery}


# -- warning and info paths ------------------------------------------------------------------------


def create_ticket(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Open a ticket for a warning and post the notice."""
    from incident_ops.hooks.http_services import open_ticket
    from include.slack_blocks import incident_header, ticket_blocks

    alert, analysis = _alert(ti), _analysis(ti)
    store, incident_id = _store(), _incident_id(dag_run)
    ticket = open_ticket(
        incident_id=incident_id,
        title=incident_header(alert, analysis),
        body=analysis.diagnosis,
        severity=analysis.severity,
    )
    store.update_incident(incident_id, ticket_id=ticket["ticket_id"])
    store.add_event(incident_id, "ticket_opened", ticket)
    _deliver(
        dag_run,
        key="ticket",
        purpose="tickets",
        text=incident_header(alert, analysis),
        blocks=ticket_blocks(alert, analysis, ticket_id=ticket["ticket_id"]),
    )
    return ticket


def diagnostic_report(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Post the diagnosis and the suggested next step in the incident's thread."""
    from include.reports import diagnostic_text
    from include.runbooks import get_runbook
    from include.slack_blocks import text_blocks

    alert, analysis = _alert(ti), _analysis(ti)
    text = diagnostic_text(alert, analysis, get_runbook(analysis.runbook))
    return _deliver(
        dag_run,
        key="diagnostics",
        purpose="tickets",
        text=text,
        blocks=text_blocks("Diagnostic report", text),
    )


def log_only(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Record an informational alert; nobody is paged."""
    analysis = _analysis(ti)
    _store().add_event(_incident_id(dag_run), "logged", {"summary": analysis.summary})
    log.info("Informational: %s", analysis.summary)
    return {"logged": True}


# -- closing ---------------------------------------------------------------------------------------


def resolve_incident(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Close the incident with the outcome of whichever branches ran."""
    from include.reports import outcome_of

    fix = ti.xcom_pull(task_ids=EXECUTE_FIX)
    escalation = ti.xcom_pull(task_ids=ESCALATE)
    approval = _outcome(ti, required=False)
    analysis = _analysis(ti)
    outcome = outcome_of(
        severity=analysis.severity,
        fixed=bool(fix),
        escalated=bool(escalation),
        approval_state=approval.state if approval else None,
    )
    _store().resolve_incident(_incident_id(dag_run), outcome=outcome)
    return {"outcome": outcome}


def final_report(ti, dag_run, **_: Any) -> dict[str, Any]:
    """Write the incident report (the model's when configured, the plain one otherwise) and post it."""
    from incident_ops.analysis import write_report_with_record
    from include.reports import final_report_text
    from include.slack_blocks import text_blocks

    store, incident_id = _store(), _incident_id(dag_run)
    plain = final_report_text(
        incident=store.get_incident(incident_id),
        timeline=store.timeline(incident_id),
        actions=store.actions_for(incident_id),
        approvals=[a.to_json() for a in store.list_approvals(run_id=dag_run.run_id)],
    )
    report, record = write_report_with_record(plain)
    if record["fallback_reason"] != "not_configured":
        store.add_event(incident_id, "llm_call", record)
    delivery = _deliver(
        dag_run,
        key="final_report",
        purpose="oncall",
        text=plain.splitlines()[0],
        blocks=text_blocks("Incident report", report),
    )
    return {
        "incident_id": incident_id,
        "report_sent": delivery["sent"],
        "lines": len(report.splitlines()),
        "written_by": record["analyzer"],
    }
