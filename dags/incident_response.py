"""The `incident_response` DAG: wiring, trigger form and docs only; the work is in plugins/incident_ops."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, Param
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

from incident_ops import tasks
from incident_ops.notifiers.failure import IncidentFailureNotifier
from incident_ops.sensors.approval import ApprovalSensor
from include import names
from include.limits import (
    MAX_FINGERPRINT,
    MAX_ID,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
    MAX_METRIC_NAME,
    MAX_METRICS,
)
from include.vocabulary import Severity, Source

DOC_MD = """
# Incident response

Handles one alert per run: **ingest → enrich → ai_summarize → ai_diagnose → analyze_severity**, then

* **critical**: `page_oncall` pages the on-call engineer in Slack while `automated_containment` runs the
  runbook's low-risk containment. `approval_needed` decides whether the recommended fix needs a human:
  risky actions, low confidence or `require_approval` create an approval record (`request_approval`,
  posted to Slack with Approve / Reject buttons and a link to the record page) and `wait_for_approval`
  waits, deferred, for the decision. Approved runs `execute_fix`; rejected or expired runs `escalate`
  (secondary on-call and a ticket); an alert resolved upstream cancels the record and skips both.
* **warning**: `create_ticket`, then `diagnostic_report` in the incident's Slack thread.
* **info**: `log_only`.

Every path ends in `resolve_incident` and `final_report` (the report goes to the Slack thread).
A rejected or expired approval is an outcome, not a failure: the run still succeeds.

**Approve** on the record page (`/incident-response/approvals/<id>`, linked from the Slack message and the
*Incident approvals* menu entry) or with the Slack buttons.

**Trigger conf** is the alert itself, for example
`{"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"}`; the form lists every field.

**Connections** (all optional): `device_inventory_api` (HTTP, `GET /devices/<id>`; default: the
inventory file in `include/`), `slack_api_default` (Slack bot token; without it messages stay in the
incident store's outbox), `llm_default` (an OpenAI-compatible endpoint; without it the rules analyser
answers), `incident_store` (PostgreSQL; default is a SQLite file in `$AIRFLOW_HOME`),
`device_control_api` and `ticketing_api` (HTTP; without them actions are simulated and tickets local),
`pagerduty_events_default` (pages, acknowledgements and resolutions as PagerDuty events),
`jira_default` (Jira issues instead of local tickets), `incident_metrics` (the metrics token).
**Variables**: `incident_slack_channels`, `incident_approvers`, `incident_responders`.
"""

ALERT = "Alert"
OPTIONS = "Run options"

# device_id and error have no default: a trigger without them is refused (400 naming the field, a
# required field in the form) instead of starting an incident for an example device.
PARAMS = {
    "device_id": Param(
        type="string",
        minLength=1,
        maxLength=MAX_ID,
        title="Device or service",
        description="The device (or service) that raised the alert, e.g. PUMP-07B.",
        examples=["PUMP-07B", "PUMP-12A", "COMP-03", "MOTOR-21", "SENSOR-T-88", "GW-NORTH-1"],
        section=ALERT,
    ),
    "error": Param(
        type="string",
        minLength=1,
        maxLength=MAX_ID,
        title="Error code",
        description="The alert's error code, e.g. PRESSURE_SPIKE_DETECTED, OVERHEATING, SENSOR_FAULT.",
        # Suggestions only (a datalist in the form): the codes the runbooks recognise.
        examples=[
            "PRESSURE_SPIKE_DETECTED",
            "OVERHEATING",
            "SENSOR_FAULT",
            "STUCK_READING",
            "DEVICE_OFFLINE",
            "POWER_LOSS",
            "FIRMWARE_CRASH",
            "MAINTENANCE_DUE",
        ],
        section=ALERT,
    ),
    "message": Param(
        None,
        type=["null", "string"],
        maxLength=MAX_MESSAGE,
        title="Message",
        description="Free text from the sender, shown to the on-call engineer.",
        section=ALERT,
    ),
    "source": Param(
        Source.UI,
        type="string",
        enum=list(Source),
        values_display={
            Source.ALERTMANAGER: "Prometheus Alertmanager",
            Source.GRAFANA: "Grafana",
            Source.PAGERDUTY: "PagerDuty",
            Source.IOT: "IoT device",
            Source.UI: "Airflow UI",
            Source.API: "REST API",
            Source.SLACK: "Slack (/incident declare)",
            Source.GENERIC: "Other",
        },
        title="Source",
        description="Where the alert came from.",
        section=ALERT,
    ),
    "severity": Param(
        None,
        type=["null", "string"],
        enum=[None, *Severity],
        values_display={"null": "None (the analysis decides)", **{s: s.title() for s in Severity}},
        title="Severity hint",
        description="The sender's severity; it can raise the analysed severity, never lower it.",
        section=ALERT,
    ),
    "metrics": Param(
        {},
        type="object",
        additionalProperties={"type": "number"},
        maxProperties=MAX_METRICS,
        propertyNames={"maxLength": MAX_METRIC_NAME},
        title="Metrics",
        description=(
            f'Numeric readings, e.g. {{"pressure_bar": 9.4, "temperature_c": 71}}; at most {MAX_METRICS}.'
        ),
        section=ALERT,
    ),
    "labels": Param(
        {},
        type="object",
        additionalProperties={"type": "string", "maxLength": MAX_LABEL_VALUE},
        maxProperties=MAX_LABELS,
        propertyNames={"maxLength": MAX_LABEL_KEY},
        title="Labels",
        description=(
            'String labels from the alerting system, e.g. {"site": "plant-north"}; at most '
            f"{MAX_LABELS}, names up to {MAX_LABEL_KEY} and values up to {MAX_LABEL_VALUE} characters."
        ),
        section=ALERT,
    ),
    "fingerprint": Param(
        None,
        type=["null", "string"],
        maxLength=MAX_FINGERPRINT,
        title="Fingerprint",
        description="The alerting system's id for this alert; repeats with the same value are one incident.",
        section=ALERT,
    ),
    "started_at": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Started at",
        description="When the alert started (RFC 3339).",
        section=ALERT,
    ),
    "require_approval": Param(
        False,
        type="boolean",
        title="Require approval",
        description="Ask a human before any fix, whatever the runbook says.",
        section=OPTIONS,
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Go through every step but send no action to devices.",
        section=OPTIONS,
    ),
}

# Bad input, refusals and bugs fail at once; only faults that a later attempt can fix burn retries.
NO_RETRY_ON_BAD_INPUT = [
    RetryRule(exception="include.errors.InvalidDocument", action=RetryAction.FAIL, reason="bad input"),
    RetryRule(exception="pydantic.ValidationError", action=RetryAction.FAIL, reason="bad input"),
    RetryRule(exception="include.errors.RunbookError", action=RetryAction.FAIL, reason="runbook error"),
    RetryRule(exception="include.errors.ConfigError", action=RetryAction.FAIL, reason="configuration"),
    RetryRule(
        exception="incident_ops.hooks.errors.ServiceRejectedError",
        action=RetryAction.FAIL,
        reason="an HTTP service (inventory, device control, ticketing) refused the request",
    ),
]
STORE_RETRY = {
    "retries": 3,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=1),
    "retry_policy": ExceptionRetryPolicy(NO_RETRY_ON_BAD_INPUT),
}
AI_RETRY = {
    "retries": 4,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=2),
    "execution_timeout": timedelta(minutes=5),
    "retry_policy": ExceptionRetryPolicy(NO_RETRY_ON_BAD_INPUT),
}
SLACK_RETRY = {
    "retries": 5,
    "retry_delay": timedelta(seconds=15),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
    "retry_policy": ExceptionRetryPolicy(
        [
            RetryRule(
                exception="incident_ops.hooks.errors.SlackPermanentError",
                action=RetryAction.FAIL,
                reason="Slack refused the message; a retry would be refused too",
            ),
            # The Slack client already waited out Retry-After a few times; back off a full minute.
            RetryRule(
                exception="incident_ops.hooks.errors.SlackRateLimitedError",
                action=RetryAction.RETRY,
                retry_delay=timedelta(minutes=1),
                reason="Slack rate limit",
            ),
            *NO_RETRY_ON_BAD_INPUT,
        ]
    ),
}
# Actions on devices: few retries, each under the same idempotency key; a refusal is final.
DEVICE_RETRY = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "execution_timeout": timedelta(minutes=5),
    "retry_policy": ExceptionRetryPolicy(NO_RETRY_ON_BAD_INPUT),
}
BRANCH_RETRY = {
    "retries": 1,
    "retry_delay": timedelta(seconds=5),
    "retry_policy": ExceptionRetryPolicy(NO_RETRY_ON_BAD_INPUT),
}
JOIN = "none_failed_min_one_success"


def step(task_id: str, callable_: Callable[..., Any]) -> dict[str, Any]:
    """Return the arguments that run `callable_` as task `task_id`, its docstring as the task's docs."""
    return {
        "task_id": task_id,
        "python_callable": callable_,
        "doc_md": inspect.cleandoc(callable_.__doc__ or ""),
    }


with DAG(
    dag_id=names.DAG_ID,
    description="AI incident response: analyse, page, contain, approve, fix or escalate, report.",
    schedule=None,
    catchup=False,
    max_active_runs=32,
    doc_md=DOC_MD,
    tags=["incident-response", "ai", "slack"],
    default_args={"owner": "sre", "on_failure_callback": IncidentFailureNotifier()},
) as dag:
    ingest = PythonOperator(**step(names.INGEST, tasks.ingest), **STORE_RETRY)
    enrich = PythonOperator(**step(names.ENRICH, tasks.enrich), **STORE_RETRY)
    ai_summarize = PythonOperator(**step(names.SUMMARIZE, tasks.ai_summarize), **AI_RETRY)
    ai_diagnose = PythonOperator(**step(names.DIAGNOSE, tasks.ai_diagnose), **AI_RETRY)
    analyze_severity = BranchPythonOperator(
        **step(names.ANALYZE_SEVERITY, tasks.analyze_severity), **BRANCH_RETRY
    )

    page_oncall = PythonOperator(**step(names.PAGE_ONCALL, tasks.page_oncall), **SLACK_RETRY)
    automated_containment = PythonOperator(
        **step(names.CONTAINMENT, tasks.automated_containment), **DEVICE_RETRY
    )
    approval_needed = BranchPythonOperator(
        **step(names.APPROVAL_NEEDED, tasks.approval_needed), **BRANCH_RETRY
    )
    request_approval = PythonOperator(**step(names.REQUEST_APPROVAL, tasks.request_approval), **SLACK_RETRY)
    wait_for_approval = ApprovalSensor(
        task_id=names.WAIT_FOR_APPROVAL,
        approval_id=f"{{{{ ti.xcom_pull(task_ids='{names.REQUEST_APPROVAL}') }}}}",
        **STORE_RETRY,
    )
    approval_decision = BranchPythonOperator(
        **step(names.APPROVAL_DECISION, tasks.approval_decision), **BRANCH_RETRY
    )
    # Reached straight from approval_needed or after an approval: one of its parents is always skipped.
    execute_fix = PythonOperator(
        **step(names.EXECUTE_FIX, tasks.execute_fix), trigger_rule=JOIN, **DEVICE_RETRY
    )
    escalate = PythonOperator(**step(names.ESCALATE, tasks.escalate), **SLACK_RETRY)

    create_ticket = PythonOperator(**step(names.CREATE_TICKET, tasks.create_ticket), **SLACK_RETRY)
    diagnostic_report = PythonOperator(
        **step(names.DIAGNOSTIC_REPORT, tasks.diagnostic_report), **SLACK_RETRY
    )
    log_only = PythonOperator(**step(names.LOG_ONLY, tasks.log_only), **STORE_RETRY)

    resolve_incident = PythonOperator(
        **step(names.RESOLVE_INCIDENT, tasks.resolve_incident), trigger_rule=JOIN, **STORE_RETRY
    )
    final_report = PythonOperator(
        **step(names.FINAL_REPORT, tasks.final_report), trigger_rule=JOIN, **SLACK_RETRY
    )

    ingest >> enrich >> ai_summarize >> ai_diagnose >> analyze_severity
    analyze_severity >> [page_oncall, automated_containment, create_ticket, log_only]
    page_oncall >> approval_needed >> [request_approval, execute_fix]
    request_approval >> wait_for_approval >> approval_decision >> [execute_fix, escalate]
    create_ticket >> diagnostic_report
    [execute_fix, escalate, automated_containment, diagnostic_report, log_only] >> resolve_incident
    resolve_incident >> final_report

# The trigger form's Params are given once the tasks exist: Airflow deep-copies a DAG's params into
# every operator made inside it (70% of this file's parse, paid again by every task process), and
# merges the DAG's params into each task's context at run time anyway.
dag.params = PARAMS
