"""The built-in analyser: deterministic rules used when no LLM is configured or the LLM fails."""

from __future__ import annotations

from include.models import Alert, Analysis, Enrichment
from include.runbooks import FALLBACK, load_runbooks, match_runbook
from include.severity import severity_rank

# Confidence the rules claim: high when a runbook's thresholds decide, low when nothing matched
# (so that the approval policy hands the decision to a human).
CONFIDENCE_THRESHOLD_MATCH = 0.9
CONFIDENCE_ERROR_MATCH = 0.75
CONFIDENCE_UNKNOWN = 0.3


def _breached(alert: Alert) -> list[str]:
    """Return the metrics that exceed any runbook's critical threshold (90 °C is critical everywhere)."""
    limits: dict[str, float] = {}
    for book in load_runbooks().values():
        limits.update(book.critical_above)
    return [
        f"{metric} {alert.metrics[metric]:g} > {limit:g}"
        for metric, limit in sorted(limits.items())
        if metric in alert.metrics and alert.metrics[metric] > limit
    ]


def analyze(alert: Alert, enrichment: Enrichment) -> Analysis:
    """Classify an alert with the runbooks' rules."""
    runbook = match_runbook(alert.error, alert.metrics)
    breaches = _breached(alert)
    if breaches:
        severity, confidence = "critical", CONFIDENCE_THRESHOLD_MATCH
        why = f"{runbook.title}: {'; '.join(breaches)}."
    elif runbook.name == FALLBACK:
        severity, confidence = "warning", CONFIDENCE_UNKNOWN
        why = f"No runbook recognises error {alert.error!r}; an engineer should look at it."
    elif alert.error.strip().upper() in runbook.critical_errors:
        severity, confidence = "critical", CONFIDENCE_ERROR_MATCH
        why = f"{runbook.title}: {alert.error} is critical by itself."
    else:
        severity, confidence = runbook.default_severity, CONFIDENCE_ERROR_MATCH
        why = f"{runbook.title}: {alert.error} matched the runbook."
    # A hint from the sender can raise the severity, never lower what the rules found.
    if alert.severity and severity_rank(alert.severity) > severity_rank(severity):
        severity = alert.severity
        why += f" Raised to {severity} by the sender's severity hint."
    action = (
        runbook.critical_action
        if severity == "critical" and runbook.critical_action
        else runbook.default_action
    )
    where = f" at {enrichment.site}" if enrichment.site else ""
    kind = enrichment.kind or "device"
    summary = f"{alert.error} on {kind} {alert.device_id}{where}"
    if alert.message:
        summary += f": {alert.message[:300]}"
    return Analysis(
        severity=severity,
        summary=summary,
        diagnosis=why,
        recommended_action=action,
        confidence=confidence,
        analyzer="rules",
        runbook=runbook.name,
    )
