"""The AI steps: an LLM through `llm_default` when configured, the rules analyser otherwise."""

from __future__ import annotations

import logging
from typing import Any

from include import rules_analyzer
from include.models import Alert, Analysis, Enrichment

log = logging.getLogger(__name__)
LLM_CONN_ID = "llm_default"


def _llm_configured() -> bool:
    from incident_ops.hooks.http_services import connection_exists

    return connection_exists(LLM_CONN_ID)


def summarize(alert: Alert, enrichment: Enrichment) -> dict[str, Any]:
    """Return {"summary", "analyzer"} for the alert."""
    if _llm_configured():
        log.warning("Connection %s is set but the LLM analyser is not available in this version; "
                    "using the rules analyser", LLM_CONN_ID)
    analysis = rules_analyzer.analyze(alert, enrichment)
    return {"summary": analysis.summary, "analyzer": analysis.analyzer}


def diagnose(alert: Alert, enrichment: Enrichment, summary: dict[str, Any] | None) -> Analysis:
    """Return the validated analysis: severity, diagnosis and a runbook action."""
    analysis = rules_analyzer.analyze(alert, enrichment)
    if summary and summary.get("summary"):
        analysis = analysis.model_copy(update={"summary": summary["summary"]})
    return Analysis.model_validate(analysis.model_dump())
