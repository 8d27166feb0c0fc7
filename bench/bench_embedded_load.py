"""Benchmark the embedded default (LocalExecutor, embedded PostgreSQL) under a small team's burst.

    .venv/bin/python bench/bench_embedded_load.py [--triggers 20] [--posts 100] [--distinct 20]
        [--clients 16] [--warm-up 2] [--wait 600] [--db sqlite] [--set KEY=VALUE ...] [--label NAME]
        [--json PATH] [--keep-home]

Starts a stack with LocalAirflow (fresh AIRFLOW_HOME, free port, INCIDENT_WEBHOOK_TOKEN set, the DAG
unpaused), triggers `--warm-up` runs and waits until a task of theirs runs, then sends `--triggers`
REST triggers of incident_response and `--posts` Alertmanager webhook posts (`--distinct` alerts,
each re-sent) from `--clients` threads at once (scripts/embedded_load.py). `--set` adds Airflow
settings to the stack's environment to measure a candidate; `--db sqlite` measures the metadata DB
on a SQLite file (the default before the embedded PostgreSQL).

Prints answers by status, resets, latency p50/p95, accepted alerts against the runs Airflow holds,
whether every component is still alive, and how many runs finished within `--wait` seconds; writes
the same as JSON (bench/results/embedded_load.json). Exits 1 if any answer was a 5xx or a reset, an
accepted alert has no run, or a component died.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts import embedded_load  # noqa: E402
from scripts.local_airflow import LocalAirflow, LocalAirflowError  # noqa: E402

DEFAULT_JSON = REPO / "bench" / "results" / "embedded_load.json"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(pairs: list[str]) -> dict[str, str]:
    """Parse KEY=VALUE pairs."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE, not {pair!r}")
        parsed[key] = value
    return parsed


def measure(stack: LocalAirflow, args: argparse.Namespace, token: str) -> dict[str, Any]:
    """Send the load, then wait for its runs; return the figures."""
    jobs = embedded_load.plan(args.triggers, args.posts, args.distinct, uuid.uuid4().hex[:8])
    warm = embedded_load.warm_up(stack, args.warm_up, timeout=120) if args.warm_up else set()
    load = embedded_load.send(stack, jobs, token, args.clients)
    alive_after_burst = embedded_load.components_alive(stack)
    accepted = load.accepted_alerts()
    triggered = load.triggered_runs()
    runs = embedded_load.run_states(stack)
    burst_end = load.started_at + load.seconds
    started_in_burst = sum(
        1 for r in runs.values() if r.get("start_date") and _epoch(r["start_date"]) <= burst_end
    )
    wanted = warm | triggered | set(accepted.values())
    began = time.monotonic()
    try:
        states = embedded_load.wait_for_runs(stack, wanted, args.wait)
    except LocalAirflowError as err:  # a component died while we waited
        states = {run_id: "unknown" for run_id in wanted}
        print(f"While waiting for the runs: {err}"[:2000])
    waited = time.monotonic() - began
    alive = embedded_load.components_alive(stack)
    p50, p95 = load.latency(0.5), load.latency(0.95)
    return {
        "requests": len(load.answers),
        "burst_seconds": round(load.seconds, 2),
        "statuses": dict(load.statuses),
        "server_errors": len(load.server_errors),
        "resets": len(load.resets),
        "errors_sample": sorted({a.error or "" for a in load.failures})[:5],
        "latency_p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "latency_p95_ms": None if p95 is None else round(p95 * 1000, 1),
        "triggers_accepted": len(triggered),
        "triggered_runs_found": len(triggered & set(runs)),
        "alerts_sent": len(load.alerts_sent()),
        "alerts_accepted": len(accepted),
        "alert_runs_found": len(set(accepted.values()) & set(runs)),
        "warm_up_runs": len(warm),
        "runs_started_during_burst": started_in_burst,
        "alive_after_burst": alive_after_burst,
        "alive_at_end": alive,
        "runs_by_state": dict(Counter(states.values())),
        "runs_finished": sum(1 for s in states.values() if s in ("success", "failed")),
        "runs_waited_for": len(wanted),
        "wait_seconds": round(waited, 1),
        "database_locked_log_lines": embedded_load.lock_errors(stack),
    }


def _epoch(value: str) -> float:
    """Return the POSIX time of an ISO 8601 time from the API."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def passed(figures: dict[str, Any]) -> bool:
    """Return whether the load met the requirement: no 5xx, no reset, every alert its run, all alive."""
    return (
        figures["server_errors"] == 0
        and figures["resets"] == 0
        and figures["alerts_accepted"] == figures["alerts_sent"] == figures["alert_runs_found"]
        and figures["triggers_accepted"] == figures["triggered_runs_found"]
        and all(figures["alive_at_end"].values())
    )


def print_table(label: str, figures: dict[str, Any]) -> None:
    """Print the figures as a two-column table."""
    rows = [
        ("settings", label),
        ("start-up", f"{figures['ready_after_s']} s to healthy"),
        ("requests", f"{figures['requests']} in {figures['burst_seconds']} s"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(figures["statuses"].items()))),
        ("5xx / resets", f"{figures['server_errors']} / {figures['resets']}"),
        ("latency", f"p50 {figures['latency_p50_ms']} ms, p95 {figures['latency_p95_ms']} ms"),
        (
            "triggers",
            f"{figures['triggers_accepted']} accepted, {figures['triggered_runs_found']} runs found",
        ),
        (
            "alerts",
            f"{figures['alerts_sent']} sent, {figures['alerts_accepted']} accepted, "
            f"{figures['alert_runs_found']} runs found",
        ),
        (
            "runs running in burst",
            f"{figures['runs_started_during_burst']} started by its end ({figures['warm_up_runs']} warm-up)",
        ),
        ("alive after burst", _alive(figures["alive_after_burst"])),
        (
            "runs finished",
            f"{figures['runs_finished']} of {figures['runs_waited_for']} in {figures['wait_seconds']} s "
            f"{figures['runs_by_state']}",
        ),
        ("alive at end", _alive(figures["alive_at_end"])),
        ("'database is locked'", f"{figures['database_locked_log_lines']} log lines"),
        ("requirement", "met" if figures["passed"] else "NOT MET"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for error in figures["errors_sample"]:
        print(f"  e.g. {error}"[:300])


def _alive(alive: dict[str, bool]) -> str:
    dead = [name for name, ok in alive.items() if not ok]
    return "all" if not dead else "DIED: " + ", ".join(dead)


def main(argv: list[str] | None = None) -> int:
    """Start a stack, apply the load, print and write the figures; return 1 if the requirement failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=20)
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--distinct", type=int, default=20, help="distinct alerts among the posts")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--warm-up", type=int, default=2, help="runs triggered first; the load starts once their tasks run"
    )
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the runs")
    parser.add_argument("--db", choices=["default", "sqlite"], default="default", help="metadata DB")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Airflow setting")
    parser.add_argument("--label", default="", help="name of the settings measured (default: --set)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--keep-home", action="store_true", help="keep the throw-away AIRFLOW_HOME")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 0 < args.wait <= 3600:
        parser.error("--clients must be 1..64 and --wait 0..3600")
    overrides = settings(args.set)
    label = args.label or ", ".join([f"db {args.db}", *args.set])

    home = Path(tempfile.mkdtemp(prefix="bench-embedded-load-"))
    if args.db == "sqlite":
        overrides = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}", **overrides}
    token = uuid.uuid4().hex
    extra_env = {"INCIDENT_WEBHOOK_TOKEN": token, **overrides}
    stack = LocalAirflow(home, free_port(), extra_env=extra_env, inherit_airflow_env=False)
    try:
        print(f"Starting Airflow ({label}) on 127.0.0.1:{stack.api_port} ...", flush=True)
        stack.prepare()
        stack.start()
        stack.wait_ready(240)
        stack.login("admin")
        stack.wait_for_dag(embedded_load.DAG_ID, timeout=180)
        stack.unpause(embedded_load.DAG_ID)
        print(f"Ready after {stack.ready_after:.1f} s; sending the load ...", flush=True)
        ready = round(stack.ready_after or 0, 1)
        figures: dict[str, Any] = {"settings": label, "overrides": overrides, "ready_after_s": ready}
        figures.update(measure(stack, args, token))
        figures["passed"] = passed(figures)
        print_table(label, figures)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nWrote {args.json}")
        return 0 if figures["passed"] else 1
    finally:
        stack.stop()
        if args.keep_home:
            print(f"Kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
