"""The built-in analyser: deterministic rules used when no LLM is configured or the LLM fails.

The rules are the floor a model can only raise, so each piece of evidence counts: the error code,
every reading (converted to the runbooks' units, whatever its metric is called) and every reading the
message states in words. The most severe evidence decides the severity and the runbook (the error
code wins a tie: it says what the device itself saw); the diagnosis names the rest. An error code that
only says what is seen ("offline") is therefore passed over when the readings show why (its supply
collapsed: a power fault).
"""

from __future__ import annotations

from dataclasses import dataclass

from include.models import Alert, Analysis, Enrichment
from include.readings import Reading, alert_readings
from include.runbooks import FALLBACK, Runbook, load_runbooks
from include.vocabulary import Severity

# Confidence the rules claim: high when a runbook's thresholds decide, low when nothing matched
# (so that the approval policy hands the decision to a human).
CONFIDENCE_THRESHOLD_MATCH = 0.9
CONFIDENCE_ERROR_MATCH = 0.75
# A reading found in prose may be quoted out of context: less sure than a metric, still above the
# approval threshold (the high-risk actions it leads to need a human anyway).
CONFIDENCE_TEXT_MATCH = 0.7
CONFIDENCE_UNKNOWN = 0.3
UNITS = {
    "temperature_c": "°C",
    "temperature": "°C",
    "pressure_bar": "bar",
    "voltage_v": "V",
    "current_a": "A",
}


@dataclass(frozen=True)
class Evidence:
    """One thing that points to a runbook at a severity."""

    runbook: str
    severity: Severity
    text: str
    from_code: bool = False
    from_text: bool = False

    def weight(self, code_runbook: str | None) -> tuple[int, bool, bool, bool]:
        """Order of precedence: severity; then the error code's runbook (what the device itself saw);
        then a reading over the bare code (it says how bad); then a metric over prose."""
        return (
            self.severity.rank,
            self.runbook == code_runbook,
            not self.from_code,
            not self.from_text,
        )


def _code_runbook(error: str, books: dict[str, Runbook]) -> Runbook | None:
    code = error.strip().upper()
    return next((book for book in books.values() if code in book.errors), None)


def _describe(reading: Reading) -> str:
    """Say what was read: "temperature_c 95", "TempF 210 °F = 98.9 °C", "... (read from the message text)"."""
    if not reading.converted and not reading.from_text:
        return f"{reading.name} {reading.value:g}"
    what = f"{reading.name} {reading.given}"
    if reading.from_text:
        what += " (read from the message text)"
    if reading.converted:
        what += f" = {reading.value:.1f} {UNITS.get(reading.metric, '')}"
    return what


def _breaches(reading: Reading, book: Runbook) -> Evidence | None:
    """Return the evidence `reading` gives for `book`'s thresholds, or None within them."""
    metric, value = reading.metric, reading.value
    nominal = book.nominal.get(metric)
    if nominal is not None and reading.nominal is not None:
        value = value * nominal / reading.nominal
    scaled = (
        f" (scaled to {nominal:g} {UNITS.get(metric, '')} nominal: {value:.1f})"
        if value != reading.value
        else ""
    )
    checks = (
        (Severity.CRITICAL, ">", book.critical_above.get(metric)),
        (Severity.CRITICAL, "<", book.critical_below.get(metric)),
        (Severity.WARNING, ">", book.warning_above.get(metric)),
        (Severity.WARNING, "<", book.warning_below.get(metric)),
    )
    for severity, sign, limit in checks:
        if limit is not None and (value > limit if sign == ">" else value < limit):
            text = f"{_describe(reading)}{scaled} {sign} {limit:g}"
            return Evidence(book.name, severity, text, from_text=reading.from_text)
    return None


def gather(alert: Alert) -> tuple[list[Evidence], list[Reading]]:
    """Return every piece of evidence in `alert`, most severe first, and the readings it was read from."""
    books = load_runbooks()
    evidence: list[Evidence] = []
    by_code = _code_runbook(alert.error, books)
    if by_code is not None:
        critical = alert.error.strip().upper() in by_code.critical_errors
        severity = Severity.CRITICAL if critical else by_code.default_severity
        why = "is critical by itself" if critical else "matched the runbook"
        evidence.append(Evidence(by_code.name, severity, f"{alert.error} {why}", from_code=True))
    readings = alert_readings(alert.metrics, alert.labels, alert.message)
    for reading in readings:
        for book in books.values():
            found = _breaches(reading, book)
            if found is not None:
                evidence.append(found)
    code_runbook = by_code.name if by_code else None
    evidence.sort(key=lambda e: e.weight(code_runbook), reverse=True)
    return evidence, readings


def _by_presence(readings: list[Reading], books: dict[str, Runbook]) -> Runbook | None:
    """Return the runbook a metric names by its presence alone (one it sets no threshold on)."""
    for book in books.values():
        limited = {*book.critical_above, *book.warning_above, *book.critical_below, *book.warning_below}
        if any(r.metric in book.metrics and r.metric not in limited for r in readings if not r.from_text):
            return book
    return None


def analyze(alert: Alert, enrichment: Enrichment) -> Analysis:
    """Classify an alert with the runbooks' rules."""
    books = load_runbooks()
    evidence, readings = gather(alert)
    if evidence:
        decider = evidence[0]
        runbook, severity = books[decider.runbook], decider.severity
        confidence = (
            CONFIDENCE_ERROR_MATCH
            if decider.from_code
            else CONFIDENCE_TEXT_MATCH
            if decider.from_text
            else CONFIDENCE_THRESHOLD_MATCH
        )
        why = f"{runbook.title}: {decider.text}."
        others = [e for e in evidence[1:] if e.text != decider.text]
        if others:
            named = "; ".join(f"{e.text} ({books[e.runbook].title.lower()}, {e.severity})" for e in others)
            why += f" Other evidence: {named}."
        by_code = next((e for e in evidence if e.from_code), None)
        if by_code is not None and by_code.runbook != runbook.name:
            why += (
                f" The readings point past {alert.error} ({books[by_code.runbook].title.lower()}):"
                f" diagnosed as {runbook.title.lower()}."
            )
    else:
        runbook = _by_presence(readings, books) or books[FALLBACK]
        if runbook.name == FALLBACK:
            severity, confidence = books[FALLBACK].default_severity, CONFIDENCE_UNKNOWN
            why = f"No runbook recognises error {alert.error!r}; an engineer should look at it."
        else:
            severity, confidence = runbook.default_severity, CONFIDENCE_ERROR_MATCH
            why = f"{runbook.title}: the alert's readings name the runbook; none is over a threshold."
    # A hint from the sender can raise the severity, never lower what the rules found.
    if alert.severity and alert.severity > severity:
        severity = alert.severity
        why += f" Raised to {severity} by the sender's severity hint."
    action = (
        runbook.critical_action
        if severity is Severity.CRITICAL and runbook.critical_action
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
        diagnosis=why[:4000],
        recommended_action=action,
        confidence=confidence,
        analyzer="rules",
        runbook=runbook.name,
    )
