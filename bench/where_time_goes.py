"""Profile running processes with py-spy and say where their time goes, by layer and by function.

py-spy samples the processes from outside (no change to the server, `--nonblocking` so it does not
pause them); the collapsed stacks it writes are summed here: each sample is counted once for the
first layer found walking from the innermost frame outwards, and once for its innermost frame.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Innermost match wins: a store query run by SQLAlchemy inside our route counts as the store's.
LAYERS = (
    ("incident store (include/store)", "include/store/"),
    ("intake service (plugins/incident_ops/alert_intake.py)", "incident_ops/alert_intake.py"),
    ("alert parsing (include/alert_sources)", "include/alert_sources/"),
    ("webhook route (plugins/incident_ops/api)", "incident_ops/api/"),
    ("other product code", "incident_ops/"),
    ("PostgreSQL / SQLite driver", "psycopg"),
    ("PostgreSQL / SQLite driver", "sqlite3"),
    ("SQLAlchemy", "sqlalchemy/"),
    ("Airflow (run creation, auth, ORM models)", "airflow/"),
    ("pydantic", "pydantic"),
    ("FastAPI / Starlette", "fastapi/"),
    ("FastAPI / Starlette", "starlette/"),
    ("uvicorn / asyncio / HTTP parsing", "uvicorn/"),
    ("uvicorn / asyncio / HTTP parsing", "asyncio/"),
    ("uvicorn / asyncio / HTTP parsing", "h11"),
    ("uvicorn / asyncio / HTTP parsing", "httptools"),
    ("logging", "logging/"),
    ("logging", "structlog/"),
)


def py_spy() -> str:
    """Return the py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise FileNotFoundError("py-spy is not installed (make venv installs it)")
    return found


def start(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    """Start sampling `pid` and its subprocesses for `seconds` into a collapsed-stacks file."""
    command = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(seconds))),
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def layer_of(frames: list[str]) -> str:
    """Return the layer of a sample: the first one matching from the innermost frame outwards."""
    for frame in reversed(frames):
        for layer, marker in LAYERS:
            if marker in frame:
                return layer
    return "other (interpreter, stdlib)"


def product_caller(frames: list[str]) -> str:
    """Return the innermost frame of product code in a sample: which of our functions it serves."""
    for frame in reversed(frames):
        if "incident_ops/" in frame or "include/" in frame:
            return frame
    return "(outside product code: HTTP, auth, the event loop)"


def summarise(collapsed: Path, top: int = 12) -> dict[str, Any]:
    """Sum the collapsed stacks into shares by layer and the busiest innermost functions."""
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    callers: Counter[str] = Counter()
    idle = total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # Threads waiting for work (the thread pool, the event loop's select) are not load.
        if any(marker in frames[-1] for marker in ("select (", "epoll", "wait (threading", "_worker (")):
            idle += count
            continue
        total += count
        layers[layer_of(frames)] += count
        leaves[frames[-1]] += count
        callers[product_caller(frames)] += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return {
        "busy_samples": total,
        "idle_samples": idle,
        "layers": [{"layer": name, "share": share(n)} for name, n in layers.most_common()],
        "functions": [{"function": name, "share": share(n)} for name, n in leaves.most_common(top)],
        "product_callers": [{"function": name, "share": share(n)} for name, n in callers.most_common(top)],
    }


def print_summary(summary: dict[str, Any]) -> None:
    """Print the layers and the busiest functions."""
    print(f"\nwhere the time goes ({summary['busy_samples']} busy samples of the API server)")
    for row in summary["layers"]:
        print(f"  {row['share'] * 100:5.1f}%  {row['layer']}")
    print("  busiest innermost functions:")
    for row in summary["functions"]:
        print(f"  {row['share'] * 100:5.1f}%  {row['function'][:110]}")
    print("  on behalf of (the innermost product function of each sample):")
    for row in summary["product_callers"]:
        print(f"  {row['share'] * 100:5.1f}%  {row['function'][:110]}")
