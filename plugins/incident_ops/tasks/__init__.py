"""The callables behind the `incident_response` DAG's tasks, one module per stretch of the workflow.

Each is small: it validates its inputs from XCom, calls the domain code in `include/`, the hooks and
the approval lifecycle, writes what happened to the incident store, and returns a small JSON
document. All of them are safe to retry: ids are deterministic, messages and actions carry
idempotency keys.
"""

from __future__ import annotations

from incident_ops.tasks.closing import final_report, resolve_incident
from incident_ops.tasks.critical import (
    approval_decision,
    approval_needed,
    automated_containment,
    escalate,
    execute_fix,
    page_oncall,
    request_approval,
)
from incident_ops.tasks.noncritical import create_ticket, diagnostic_report, log_only
from incident_ops.tasks.triage import ai_diagnose, ai_summarize, analyze_severity, enrich, ingest

__all__ = [
    "ai_diagnose",
    "ai_summarize",
    "analyze_severity",
    "approval_decision",
    "approval_needed",
    "automated_containment",
    "create_ticket",
    "diagnostic_report",
    "enrich",
    "escalate",
    "execute_fix",
    "final_report",
    "ingest",
    "log_only",
    "page_oncall",
    "request_approval",
    "resolve_incident",
]
