"""The warning and info paths: a ticket and a diagnostic report, or a log entry."""

from __future__ import annotations

import logging
from typing import Any

from incident_ops.tasks import common
from include.vocabulary import Outcome, TimelineKind

log = logging.getLogger(__name__)


def create_ticket(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Open a ticket for a warning (a Jira issue when `jira_default` is configured) and post the notice."""
    from incident_ops import incident_sync
    from incident_ops.links import run_url
    from incident_ops.service_calls import open_ticket
    from include.slack_blocks import incident_header, ticket_blocks

    alert, analysis = common.alert(ti), common.analysis(ti)
    store, incident_id = common.store(), common.incident_id(dag_run)
    key = incident_sync.jira_issue(
        store,
        incident_id,
        summary=incident_header(alert, analysis),
        description=f"{analysis.summary}\n\nDiagnosis: {analysis.diagnosis}",
        run_link=run_url(dag_run),
    )
    ticket = (
        {"mode": "jira", "ticket_id": key}
        if key
        else open_ticket(
            incident_id=incident_id,
            title=incident_header(alert, analysis),
            body=analysis.diagnosis,
            severity=analysis.severity,
        )
    )
    store.incidents.update(incident_id, ticket_id=ticket["ticket_id"])
    store.incidents.add_event(incident_id, TimelineKind.TICKET_OPENED, ticket)
    common.deliver(
        dag_run,
        key="ticket",
        purpose="tickets",
        text=incident_header(alert, analysis),
        blocks=ticket_blocks(alert, analysis, ticket_id=ticket["ticket_id"]),
    )
    return ticket


def diagnostic_report(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Post the diagnosis and the suggested next step in the incident's thread."""
    from include.reports import diagnostic_text
    from include.runbooks import get_runbook
    from include.slack_blocks import text_blocks

    alert, analysis = common.alert(ti), common.analysis(ti)
    text = diagnostic_text(alert, analysis, get_runbook(analysis.runbook))
    return common.deliver(
        dag_run,
        key="diagnostics",
        purpose="tickets",
        text=text,
        blocks=text_blocks("Diagnostic report", text),
    )


def log_only(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Record an informational alert; nobody is paged. The store keeps the summary, the log redacted."""
    from include.redaction import redact_value

    analysis = common.analysis(ti)
    common.store().incidents.add_event(
        common.incident_id(dag_run), TimelineKind.LOGGED, {"summary": analysis.summary}
    )
    log.info("Informational: %s", redact_value(analysis.summary))
    return {Outcome.LOGGED.value: True}
