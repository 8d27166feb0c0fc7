"""The figures as people read them: a markdown table per analyser and per tag, and a small SVG chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

# (key in the figures, column title); rates are shown as percentages.
COLUMNS = (
    ("cases", "cases"),
    ("runbook", "runbook"),
    ("severity_exact", "severity exact"),
    ("severity_never_below", "never below (safety)"),
    ("action", "action ok"),
    ("approval", "approval as labelled"),
    ("forbidden_proposed", "forbidden proposed"),
    ("cause", "cause named"),
    ("passed", "all checks"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
)
RATES = frozenset(
    {"runbook", "severity_exact", "severity_never_below", "action", "approval", "cause", "passed"}
)
CHART_METRICS = ("runbook", "severity_exact", "severity_never_below", "action", "approval", "cause")
COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key in RATES or key.startswith("pass^"):
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _columns(rows: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    extra = sorted({k for row in rows.values() for k in row if k.startswith("pass^")})
    return [*COLUMNS, *((k, k) for k in extra)]


def table(rows: Mapping[str, Mapping[str, Any]], first: str = "analyser") -> str:
    """Return a markdown table with one row per key of `rows` (an analyser or a tag)."""
    columns = _columns(rows)
    lines = [
        "| " + " | ".join([first, *(title for _, title in columns)]) + " |",
        "| " + " | ".join(["---"] * (len(columns) + 1)) + " |",
    ]
    for name, figures in rows.items():
        cells = [_cell(key, figures.get(key)) for key, _ in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def chart(analysers: Mapping[str, Mapping[str, Any]]) -> str:
    """Return an SVG bar chart: each rate of CHART_METRICS, one bar per analyser."""
    names = list(analysers)
    bar, gap, left, top, width = 14, 10, 170, 30, 360
    group = bar * max(1, len(names)) + gap
    height = top + group * len(CHART_METRICS) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="16" font-weight="bold">make eval: share of cases right</text>',
    ]
    for i, name in enumerate(names):
        x = left + width - 40
        parts.append(
            f'<rect x="{x}" y="{4 + 14 * i}" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>'
            f'<text x="{x + 14}" y="{13 + 14 * i}">{escape(name)}</text>'
        )
    for row, metric in enumerate(CHART_METRICS):
        y0 = top + row * group
        parts.append(f'<text x="{left - 8}" y="{y0 + bar}" text-anchor="end">{escape(metric)}</text>')
        for i, name in enumerate(names):
            value = analysers[name].get(metric)
            y = y0 + i * bar
            if value is None:
                parts.append(f'<text x="{left + 4}" y="{y + bar - 3}" fill="#888">n/a</text>')
                continue
            parts.append(
                f'<rect x="{left}" y="{y}" width="{width * value:.1f}" height="{bar - 2}" '
                f'fill="{COLOURS[i % len(COLOURS)]}"/>'
                f'<text x="{left + width * value + 4:.1f}" y="{y + bar - 3}">{100 * value:.0f}%</text>'
            )
    parts.append(f'<line x1="{left}" y1="{top - 4}" x2="{left}" y2="{height - 24}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
