"""What the benchmarks share: figures, the results folder, and a throw-away embedded Airflow.

Stdlib only (plus the repo's launcher): importing Airflow here would configure it for the benchmark
process instead of the stack's.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import socket
import statistics
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.local_airflow import LocalAirflow  # noqa: E402

# No scheduler tuning by default: every side of a comparison runs on the same stack, so whatever
# `--airflow-env` sets (e.g. AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME) applies to both.
READY_TIMEOUT = 300.0


def percentile(values: Iterable[float], fraction: float) -> float:
    """Return the nearest-rank percentile of values (nan when empty)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """Return n, median, p95, min, max and the raw values, for a JSON result."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def ratio(ours: float | None, anchor: float | None) -> float | None:
    """Return ours / anchor, or None when either is missing or the anchor is zero."""
    if ours is None or not anchor or math.isnan(ours) or math.isnan(anchor):
        return None
    return ours / anchor


def comparison(
    name: str, metric: str, ours: float | None, anchor: float | None, target: str, unit: str = "s"
) -> dict[str, Any]:
    """Return one ratio row of the summary: ours against its anchor, with the target it must meet."""
    return {
        "name": name,
        "metric": metric,
        "ours": ours,
        "anchor": anchor,
        "unit": unit,
        "ratio": ratio(ours, anchor),
        "target": target,
    }


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    """Write bench/results/<name>.json with when and where it was measured; return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "load": _load()},
        **result,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nwrote {path.relative_to(REPO)}")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _load() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    """Turn KEY=VALUE arguments into a dict."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--airflow-env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


@contextmanager
def airflow_stack(
    prefix: str,
    *,
    dag_files: Sequence[Path] = (),
    extra_env: Mapping[str, str] | None = None,
    keep_home: bool = False,
) -> Iterator[LocalAirflow]:
    """Run an embedded Airflow on a throw-away home and free port, logged in as admin; always stopped.

    With dag_files, its DAGs folder holds copies of just those files; else the repo's dags/.
    """
    home = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    env = dict(extra_env or {})
    if dag_files:
        dags = home / "dags"
        dags.mkdir()
        for source in dag_files:
            shutil.copy(source, dags / source.name)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    stack = LocalAirflow(home / "airflow", free_port(), repo=REPO, extra_env=env, inherit_airflow_env=False)
    print(f"Starting Airflow on 127.0.0.1:{stack.api_port} ...", flush=True)
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(READY_TIMEOUT)
        stack.login("admin")
        print(f"Airflow ready after {stack.ready_after:.1f}s", flush=True)
        yield stack
    except Exception:
        print(f"Airflow process logs:\n{stack.log_tails(15)}", file=sys.stderr)
        raise
    finally:
        stack.stop()
        if keep_home:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Print rows as an aligned text table."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
