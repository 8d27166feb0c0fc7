"""The geometry of the incident list's small chart: incidents per day, stacked by severity."""

from __future__ import annotations

from dataclasses import dataclass

from include.incident_stats import SEVERITIES, UNKNOWN, DayCount

WIDTH = 480
HEIGHT = 120
BOTTOM = 20  # room for the day labels
ORDER = (*SEVERITIES, UNKNOWN)


@dataclass(frozen=True)
class Bar:
    """One severity's part of one day's bar."""

    x: float
    y: float
    width: float
    height: float
    severity: str
    title: str


@dataclass(frozen=True)
class DailyChart:
    """Bars and day labels of the chart."""

    width: int
    height: int
    baseline: float
    bars: list[Bar]
    labels: list[tuple[float, str]]
    peak: int


def daily_chart(days: list[DayCount]) -> DailyChart:
    """Stack each day's incidents by severity, scaled to the busiest day."""
    peak = max([day.total for day in days] + [1])
    slot = WIDTH / max(len(days), 1)
    plot = HEIGHT - BOTTOM - 4
    bars, labels = [], []
    for i, day in enumerate(days):
        x = i * slot + slot * 0.15
        top: float = HEIGHT - BOTTOM
        for severity in ORDER:
            count = day.by_severity.get(severity, 0)
            if not count:
                continue
            height = count / peak * plot
            top -= height
            title = f"{day.day.isoformat()}: {count} {severity}"
            bars.append(
                Bar(round(x, 1), round(top, 1), round(slot * 0.7, 1), round(height, 1), severity, title)
            )
        labels.append((round(i * slot + slot / 2, 1), day.day.strftime("%m-%d")))
    return DailyChart(
        width=WIDTH, height=HEIGHT, baseline=HEIGHT - BOTTOM, bars=bars, labels=labels, peak=peak
    )
