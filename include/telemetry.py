"""Telemetry thresholds: which device readings breach a runbook's limits, and the alert a breach raises.

A runbook names, per metric, ``warning_above`` and ``critical_above`` (its ``severity`` section) and
the error code of a telemetry alert (``telemetry.error``, one of its ``match.errors``, so the alert
matches that runbook). Readings within every limit raise nothing: :meth:`Thresholds.check` is a dict
lookup per reading, cheap enough for the triggerer to run on every message.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.alert_sources.base import Notification
from include.models import Alert
from include.runbooks import Runbook, load_runbooks
from include.vocabulary import AlertStatus, Severity, Source


@dataclass(frozen=True)
class Limit:
    """One metric's limits and the runbook that set them."""

    metric: str
    runbook: str
    error: str
    warning_above: float | None
    critical_above: float | None


@dataclass(frozen=True)
class Breach:
    """A reading over a limit: the metric, its value, the threshold crossed and how bad it is."""

    metric: str
    value: float
    threshold: float
    severity: Severity
    runbook: str
    error: str


class Thresholds:
    """Every runbook's telemetry limits, by metric."""

    def __init__(self, books: dict[str, Runbook]) -> None:
        self.limits: dict[str, Limit] = {}
        for book in books.values():
            if book.telemetry_error is None:
                continue
            for metric in sorted(set(book.warning_above) | set(book.critical_above)):
                # Runbooks load in file order; the first to claim a metric keeps it.
                self.limits.setdefault(
                    metric,
                    Limit(
                        metric=metric,
                        runbook=book.name,
                        error=book.telemetry_error,
                        warning_above=book.warning_above.get(metric),
                        critical_above=book.critical_above.get(metric),
                    ),
                )

    @classmethod
    def from_runbooks(cls) -> Thresholds:
        """Return the limits of the installed runbooks."""
        return cls(load_runbooks())

    def check(self, readings: dict[str, float]) -> Breach | None:
        """Return the worst breach among `readings`, or None when every reading is within its limits."""
        worst: Breach | None = None
        for metric, value in readings.items():
            limit = self.limits.get(metric)
            if limit is None:
                continue
            breach = _breach(limit, value)
            if breach is None:
                continue
            if worst is None or (breach.severity.rank, breach.value - breach.threshold) > (
                worst.severity.rank,
                worst.value - worst.threshold,
            ):
                worst = breach
        return worst


def _breach(limit: Limit, value: float) -> Breach | None:
    for severity, threshold in (
        (Severity.CRITICAL, limit.critical_above),
        (Severity.WARNING, limit.warning_above),
    ):
        if threshold is not None and value > threshold:
            return Breach(limit.metric, value, threshold, severity, limit.runbook, limit.error)
    return None


def breach_notification(device_id: str, breach: Breach, readings: dict[str, float]) -> Notification:
    """Return the alert a breach raises: one incident per device and error code while it is open."""
    alert = Alert(
        device_id=device_id,
        error=breach.error,
        message=(
            f"{breach.metric} {breach.value:g} is above the {breach.severity} threshold "
            f"{breach.threshold:g} (runbook {breach.runbook})"
        ),
        source=Source.IOT,
        severity=breach.severity,
        metrics=readings,
        labels={
            "metric": breach.metric,
            "threshold": f"{breach.threshold:g}",
            "level": breach.severity,
            "runbook": breach.runbook,
        },
    )
    return Notification(Source.IOT, AlertStatus.FIRING, alert)
