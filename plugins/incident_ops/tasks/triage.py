"""From the alert to the analysis: ingest, enrich, the two AI steps and the severity branch."""

from __future__ import annotations

import logging
from typing import Any

from incident_ops.tasks import common
from include.names import CONTAINMENT, CREATE_TICKET, LOG_ONLY, PAGE_ONCALL, SUMMARIZE
from include.vocabulary import Severity, TimelineKind

log = logging.getLogger(__name__)

SEVERITY_ROUTES = {
    Severity.CRITICAL: [PAGE_ONCALL, CONTAINMENT],
    Severity.WARNING: [CREATE_TICKET],
    Severity.INFO: [LOG_ONLY],
}


def ingest(params: dict[str, Any], dag_run: Any, **_: Any) -> dict[str, Any]:
    """Validate the alert (the run's conf) and open the incident, unless it repeats an open one.

    A repeat (an open incident of another run has the same fingerprint) and an alert its sender
    resolved before this run started end the run here: every later task is skipped, nobody is
    paged, and the run succeeds.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.resolution import resolved_before_fix
    from include.alert_sources import CONF_KEYS, unknown_conf_keys, unknown_conf_keys_allowed
    from include.models import Alert
    from include.vocabulary import TimelineKind

    values = {k: v for k, v in params.items() if v is not None}
    ignored = unknown_conf_keys(values) if unknown_conf_keys_allowed() else []
    if ignored:
        log.warning("Ignoring conf keys the DAG does not declare: %s", ", ".join(ignored))
        values = {k: v for k, v in values.items() if k in CONF_KEYS}
    alert = Alert.model_validate(values)
    store = common.store()
    opening = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "incident_key": alert.incident_key}
    if alert.fingerprint:
        incident_id, duplicate_of = store.intake.open_incident_unless_duplicate(
            **opening, alert=alert.to_xcom()
        )
        if duplicate_of:
            log.info("Alert %s is already handled by open incident %s", alert.fingerprint, duplicate_of)
            raise AirflowSkipException(f"duplicate of open incident {duplicate_of}")
    else:
        incident_id = store.incidents.open(**opening, alert=alert.to_xcom())
    if ignored:
        store.incidents.add_event(incident_id, TimelineKind.IGNORED_CONF_KEYS, {"keys": ignored})
    resolved = resolved_before_fix(store, dag_id=dag_run.dag_id, run_id=dag_run.run_id)
    if resolved is not None:
        store.incidents.resolve(incident_id, outcome=resolved)
        log.info("Alert %s was resolved (%s) before this run got to it; nothing to do", alert.error, resolved)
        raise AirflowSkipException(f"the incident was resolved before the run got to it ({resolved})")
    log.info("Incident %s opened for %s on %s", incident_id, alert.error, alert.device_id)
    return alert.to_xcom()


def enrich(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Look the device up in the inventory: the inventory API when configured, else the shipped file."""
    from incident_ops.integrations import service_on
    from include import inventory
    from include.models import Enrichment
    from include.names import INVENTORY_CONN_ID

    alert = common.alert(ti)
    if service_on(INVENTORY_CONN_ID):
        from incident_ops.hooks.http_services import InventoryHook

        record = InventoryHook().lookup(alert.device_id)
        enrichment = (
            inventory.enrichment_from_record(alert.device_id, record, source="inventory-api")
            if record
            else Enrichment(device_id=alert.device_id, known=False, source="inventory-api")
        )
    else:
        enrichment = inventory.lookup(alert.device_id)
    common.store().incidents.add_event(
        common.incident_id(dag_run),
        TimelineKind.ENRICHED,
        {"known": enrichment.known, "site": enrichment.site, "source": enrichment.source},
    )
    return enrichment.to_xcom()


def ai_summarize(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Summarise the alert for humans."""
    from incident_ops.analysis import model_was_asked, summarize_with_record

    document, record = summarize_with_record(common.alert(ti), common.enrichment(ti))
    if model_was_asked(record):  # how it answered, never the prompt or the answer
        common.store().incidents.add_event(
            common.incident_id(dag_run), TimelineKind.LLM_CALL, record.to_dict()
        )
    return document


def ai_diagnose(ti: Any, dag_run: Any, **_: Any) -> dict[str, Any]:
    """Diagnose the incident and recommend an action from the runbook."""
    from incident_ops.analysis import diagnose_with_record, model_was_asked

    alert = common.alert(ti)
    analysis, record = diagnose_with_record(alert, common.enrichment(ti), ti.xcom_pull(task_ids=SUMMARIZE))
    store, incident_id = common.store(), common.incident_id(dag_run)
    store.incidents.update(incident_id, severity=analysis.severity, analysis=analysis.to_xcom())
    if model_was_asked(record):
        # Which analyser answered, the model, latency, tokens and any fallback reason.
        store.incidents.add_event(incident_id, TimelineKind.LLM_CALL, record)
    store.incidents.add_event(
        incident_id,
        TimelineKind.DIAGNOSED,
        {
            "analyzer": analysis.analyzer,
            "severity": analysis.severity,
            "action": analysis.recommended_action,
            "confidence": analysis.confidence,
        },
    )
    return analysis.to_xcom()


def analyze_severity(ti: Any, **_: Any) -> list[str]:
    """Route the run by severity: critical pages and contains, warning tickets, info logs."""
    analysis = common.analysis(ti)
    log.info("Severity %s (%s, confidence %.2f)", analysis.severity, analysis.analyzer, analysis.confidence)
    return SEVERITY_ROUTES[analysis.severity]
