"""Every path ends here: close the incident with its outcome, then report it in the thread."""

from __future__ import annotations

from typing import Any

from incident_ops.tasks import common
from include.names import ESCALATE, EXECUTE_FIX
from include.vocabulary import TimelineKind


def resolve_incident(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Close the incident with the outcome of whichever branches ran."""
    from include.reports import outcome_of

    approval = common.outcome(ti, required=False)
    outcome = outcome_of(
        severity=common.analysis(ti).severity,
        fixed=bool(ti.xcom_pull(task_ids=EXECUTE_FIX)),
        escalated=bool(ti.xcom_pull(task_ids=ESCALATE)),
        approval_state=approval.state if approval else None,
    )
    store, incident_id = common.store(), common.incident_id(dag_run)
    if store.incidents.resolve(incident_id, outcome=outcome):
        # Resolved by the run itself (not by hand, which told them already): PagerDuty and Jira hear it.
        from incident_ops.incident_sync import incident_resolved

        incident_resolved(store, incident_id)
    return {"outcome": outcome}


def final_report(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Write the incident report (the model's when configured, the plain one otherwise) and post it."""
    from incident_ops.analysis import model_was_asked, write_report_with_record
    from include.reports import final_report_text
    from include.slack_blocks import text_blocks

    store, incident_id = common.store(), common.incident_id(dag_run)
    plain = final_report_text(
        incident=store.incidents.get(incident_id),
        timeline=store.incidents.timeline(incident_id),
        actions=store.actions.for_incident(incident_id),
        approvals=[a.to_json() for a in store.approvals.find(run_id=dag_run.run_id)],
    )
    report, record = write_report_with_record(plain)
    if model_was_asked(record):
        store.incidents.add_event(incident_id, TimelineKind.LLM_CALL, record)
    delivery = common.deliver(
        dag_run,
        key="final_report",
        purpose="oncall",
        text=plain.splitlines()[0],
        blocks=text_blocks("Incident report", report),
    )
    return {
        "incident_id": incident_id,
        "report_posted": delivery["posted"],
        "lines": len(report.splitlines()),
        "written_by": record["analyzer"],
    }
