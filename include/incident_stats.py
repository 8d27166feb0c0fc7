"""What the incident list and the metrics compute from the store: histograms, MTTA/MTTR, incidents per day.

The store aggregates in SQL (include/store/stats.py); this module holds the shapes it fills and the
small pure computations on them, so both the pages and the Prometheus collector read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from include.vocabulary import Severity

# Time to acknowledge / resolve, in seconds: a minute to a day.
DURATION_BUCKETS: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)
# One AI step's latency, in seconds (the step's retries and repairs included).
LATENCY_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
SEVERITIES: tuple[str, ...] = tuple(Severity)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Histogram:
    """Observations counted per upper bound (cumulative, as Prometheus has them), with their count and sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total: float

    @property
    def mean(self) -> float | None:
        """Return the mean observation, or None without any."""
        return self.total / self.count if self.count else None

    def buckets(self) -> list[tuple[str, int]]:
        """Return the (upper bound, cumulative count) pairs Prometheus expects, ending with +Inf."""
        return [(_bound(b), c) for b, c in zip(self.bounds, self.cumulative, strict=True)] + [
            ("+Inf", self.count)
        ]


def empty_histogram(bounds: tuple[float, ...]) -> Histogram:
    """Return a histogram without observations."""
    return Histogram(bounds=bounds, cumulative=(0,) * len(bounds), count=0, total=0.0)


def histogram_of(bounds: tuple[float, ...], per_bucket: list[int], total: float) -> Histogram:
    """Return the histogram of counts per bucket (one per bound, then the overflow past the last)."""
    cumulative, running = [], 0
    for count in per_bucket[: len(bounds)]:
        running += count
        cumulative.append(running)
    return Histogram(bounds=bounds, cumulative=tuple(cumulative), count=sum(per_bucket), total=total)


def merged(histograms: list[Histogram], bounds: tuple[float, ...]) -> Histogram:
    """Return the histogram of all the observations of `histograms` (with the same bounds)."""
    if not histograms:
        return empty_histogram(bounds)
    return Histogram(
        bounds=bounds,
        cumulative=tuple(sum(h.cumulative[i] for h in histograms) for i in range(len(bounds))),
        count=sum(h.count for h in histograms),
        total=sum(h.total for h in histograms),
    )


def _bound(value: float) -> str:
    return str(float(value))


@dataclass(frozen=True)
class WindowStats:
    """Incidents opened within a window, and their mean times to acknowledge and to resolve."""

    label: str
    opened: int
    acknowledged: int
    resolved: int
    mtta_seconds: float | None
    mttr_seconds: float | None


@dataclass(frozen=True)
class DayCount:
    """Incidents opened on one day (UTC), by severity."""

    day: date
    by_severity: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Return the day's incidents of every severity."""
        return sum(self.by_severity.values())


def severity_label(severity: str | None) -> str:
    """Return the label of a severity: one of the known ones, else ``unknown`` (bounded label values)."""
    return severity if severity in SEVERITIES else UNKNOWN


def daily_series(rows: list[tuple[str, str | None, int]], *, days: int, today: date) -> list[DayCount]:
    """Return one DayCount per day of the last `days` days, oldest first, days without incidents included.

    `rows` are (ISO day, severity, count) as the store groups them.
    """
    counts: dict[date, dict[str, int]] = {}
    for day, severity, count in rows:
        key = date.fromisoformat(str(day)[:10])
        per_day = counts.setdefault(key, {})
        label = severity_label(severity)
        per_day[label] = per_day.get(label, 0) + int(count)
    first = today - timedelta(days=days - 1)
    return [
        DayCount(day=first + timedelta(days=i), by_severity=counts.get(first + timedelta(days=i), {}))
        for i in range(days)
    ]


def human_duration(seconds: float | None) -> str:
    """Format a duration for people: "45 s", "12.5 min", "3.2 h"; "n/a" when unknown."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def window_start(now: datetime, hours: float) -> datetime:
    """Return the start of the window of `hours` ending at `now`."""
    return now - timedelta(hours=hours)
