"""Summarise bench/results/*.json: every ratio against its target, and a chart of the latencies.

    .venv/bin/python bench/summary.py

Run last by `make bench`. Reads what the benchmarks wrote (any missing one is listed as not run),
prints one table and writes bench/results/summary.json and bench/results/latencies.png.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from common import RESULTS, print_table, write_result

# (benchmark, title, unit, {label: path of a list of values in its JSON})
DISTRIBUTIONS = (
    (
        "alert_to_page",
        "Alert -> page",
        "s",
        {
            "ours (webhook -> page)": "figures.ours.values",
            "anchor (6 EmptyOperators)": "figures.anchor.values",
        },
    ),
    (
        "approval_latency",
        "Decision -> fix",
        "s",
        {
            "ours": "phases.delayed.figures.ours.values",
            "ApprovalOperator": "phases.delayed.figures.theirs.values",
            "ours, at once": "phases.immediate.figures.ours.values",
            "ApprovalOperator, at once": "phases.immediate.figures.theirs.values",
        },
    ),
    (
        "dag_parse",
        "Parse (fresh process)",
        "ms",
        {
            "incident_response.py": "figures.ours.first_parse_ms.values",
            "same shape, no-op callables": "figures.anchor.first_parse_ms.values",
        },
    ),
    (
        "webhook_intake",
        "Webhook intake, 20 senders",
        "ms",
        {"with dedup (202)": "latency_ms.values", "refused token (401)": "floor.latency_ms.values"},
    ),
)
EXPECTED = ("alert_to_page", "approval_latency", "dag_parse", "webhook_intake", "waiting")


def load() -> dict[str, dict[str, Any]]:
    """Return every benchmark result by name."""
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem != "summary":
            found[path.stem] = json.loads(path.read_text())
    return found


def dig(document: dict[str, Any], dotted: str) -> Any:
    """Return the value at a dotted path, or None."""
    value: Any = document
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def meets(ratio: float | None, target: str) -> str:
    """Say whether a ratio meets a target written as '<= 1.2x' or '>= 1x'."""
    match = re.fullmatch(r"([<>]=)\s*([\d.]+)x", target)
    if ratio is None or math.isnan(ratio) or not match:
        return "-"
    bound = float(match.group(2))
    return "yes" if (ratio <= bound if match.group(1) == "<=" else ratio >= bound) else "no"


def chart(results: dict[str, dict[str, Any]], path: Path) -> bool:
    """Draw the latency distributions that were measured, one panel per benchmark; return whether drawn."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = []
    for name, title, unit, series in DISTRIBUTIONS:
        if name not in results:
            continue
        data = {label: dig(results[name], dotted) or [] for label, dotted in series.items()}
        data = {label: values for label, values in data.items() if values}
        if data:
            panels.append((title, unit, data))
    if not panels:
        return False
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    for axis, (title, unit, data) in zip(axes[:, 0], panels, strict=True):
        labels = list(data)
        axis.boxplot([data[label] for label in labels], vert=False, whis=(5, 95), showfliers=False)
        for row, label in enumerate(labels, start=1):
            values = data[label]
            # Every trial as a dot: with 10-20 trials the points say more than the box.
            jitter = [row + 0.12 * math.sin(index * 2.4) for index in range(len(values))]
            axis.scatter(values, jitter, s=10, alpha=0.6)
        axis.set_yticks(range(1, len(labels) + 1), labels)
        axis.set_title(title, loc="left", fontsize=10)
        axis.set_xlabel(unit)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main() -> int:
    """Print the ratios and their targets, write the summary and the chart."""
    results = load()
    rows = [row for name in EXPECTED if name in results for row in results[name].get("comparisons", [])]
    table = [
        [
            r["name"],
            r["metric"],
            r["ours"],
            r["anchor"],
            r["unit"],
            r["ratio"],
            r["target"],
            meets(r["ratio"], r["target"]),
        ]
        for r in rows
    ]
    print("Benchmarks: ours against its anchor (noisy on a shared machine; see each JSON's machine.load)")
    print_table(table, ["benchmark", "metric", "ours", "anchor", "unit", "ratio", "target", "met"])
    if "waiting" in results:
        modes = results["waiting"]["modes"]
        print(f"\nWaiting, {results['waiting']['incidents']} approvals at once")
        keys = ("slots_in_use_max", "triggerer_cpu_percent", "triggerer_rss_mb_max", "seconds_until_all_done")
        print_table([[key, *(modes[m].get(key) for m in modes)] for key in keys], ["", *modes])
    missing = [name for name in EXPECTED if name not in results]
    if missing:
        print(f"\nnot run yet: {', '.join(missing)}")
    png = RESULTS / "latencies.png"
    drawn = chart(results, png)
    if drawn:
        print(f"chart {png.relative_to(RESULTS.parent.parent)}")
    write_result("summary", {"comparisons": rows, "missing": missing, "chart": png.name if drawn else None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
