"""Benchmark many incidents waiting for approval at once: the deferrable sensor against reschedule mode.

    .venv/bin/python bench/bench_waiting.py [--incidents 200] [--hold 30] [--modes deferrable,reschedule]
        [--airflow-env KEY=VALUE ...] [--keep-home]

One embedded Airflow (scripts/local_airflow on the embedded PostgreSQL + LocalExecutor, loopback, a
free port) whose DAGs folder holds only bench/dags/approval_wait_bench.py: two DAGs whose runs are one
`ApprovalSensor` each, deferrable, or `deferrable=False, mode="reschedule"` with a poke every 5 s. To
keep this affordable on 2 cores the benchmark creates the incidents and their approval records in
the stack's incident store itself (what request_approval does, without Slack) and passes each run
its record's id; the rest of incident_response is not run. For each mode in turn:

1. create --incidents records and trigger one run per record through the REST API;
2. wait until every run's sensor waits (deferred, or poked at least once and not yet decided);
3. for --hold seconds sample the default pool's occupied slots (running + queued: worker slots in
   use) and the CPU and resident memory of the triggerer (with what it forked) and of the whole stack;
4. approve every record through the plugin's API (POST .../approvals/{id}/decisions, 8 at a time),
   and time until every run has ended, from the first decision; runs that failed are counted.

Prints one table and writes bench/results/waiting.json. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import psutil
from common import REPO, airflow_stack, parse_env, print_table, write_result

from include.store import IncidentStore
from scripts.local_airflow import LocalAirflow, LocalAirflowError

DAG_FILE = REPO / "bench" / "dags" / "approval_wait_bench.py"
DAGS = {"deferrable": "approval_wait_deferrable", "reschedule": "approval_wait_reschedule"}
WAIT_TASK = "wait"
ACTION = "restart_pump"
DECIDERS = 8


def create_records(store: IncidentStore, dag_id: str, count: int) -> list[tuple[str, str]]:
    """Open `count` incidents with a pending approval each; return (run id, approval id) pairs."""
    pairs = []
    for _ in range(count):
        run_id = f"bench-wait-{uuid.uuid4().hex[:10]}"
        incident_id = store.incidents.open(
            dag_id=dag_id,
            run_id=run_id,
            incident_key=run_id,
            alert={"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"},
        )
        record = store.approvals.create(
            incident_id=incident_id,
            dag_id=dag_id,
            run_id=run_id,
            action=ACTION,
            risk="low",
            reasons=["benchmark"],
            quorum=1,
            approvers=None,
            deadline=timedelta(hours=2),
        )
        pairs.append((run_id, record.id))
    return pairs


def count_tasks(stack: LocalAirflow, dag_id: str, states: tuple[str, ...]) -> int:
    """Return how many of the DAG's wait tasks are in one of `states`."""
    query = "&".join(f"state={s}" for s in states)
    status, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?limit=1&{query}")
    if status != 200:
        raise LocalAirflowError(f"task instances of {dag_id}: HTTP {status} {body!r}")
    return body["total_entries"]


def never_started(stack: LocalAirflow, dag_id: str) -> int:
    """Return how many of the DAG's wait tasks have not started once yet."""
    status, body = stack.api(
        "GET",
        f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?limit=1000&state=scheduled&state=queued&state=no_status",
    )
    if status != 200:
        raise LocalAirflowError(f"task instances of {dag_id}: HTTP {status} {body!r}")
    return sum(ti.get("start_date") is None for ti in body["task_instances"])


def count_runs(stack: LocalAirflow, dag_id: str, state: str) -> int:
    """Return how many runs of the DAG are in `state`."""
    status, body = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=1&state={state}")
    if status != 200:
        raise LocalAirflowError(f"runs of {dag_id}: HTTP {status} {body!r}")
    return body["total_entries"]


def slots_in_use(stack: LocalAirflow) -> int:
    """Return the default pool's running + queued slots (deferred tasks hold none by default)."""
    status, pool = stack.api("GET", "/api/v2/pools/default_pool")
    if status != 200:
        raise LocalAirflowError(f"default pool: HTTP {status} {pool!r}")
    return pool["running_slots"] + pool["queued_slots"]


def processes(stack: LocalAirflow, component: str | None = None) -> list[psutil.Process]:
    """Return the live processes of one component (with what it forked), or of the whole stack."""
    if component is None:
        pids = stack.pids()
    else:
        root = stack.components[component].pid
        pids = {root, *(child.pid for child in psutil.Process(root).children(recursive=True))}
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """Return the user + system CPU seconds the processes have used so far."""
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_mb(procs: list[psutil.Process]) -> float:
    """Return the processes' resident memory in MiB."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def hold(stack: LocalAirflow, seconds: float) -> dict[str, Any]:
    """Sample slots, CPU and memory while everything waits; return the figures."""
    triggerer, everything = processes(stack, "triggerer"), processes(stack)
    cpu_before, all_before, began = cpu_seconds(triggerer), cpu_seconds(everything), time.monotonic()
    slots, memory = [], []
    while time.monotonic() - began < seconds:
        try:
            slots.append(slots_in_use(stack))
        except TimeoutError:  # an overloaded API server: skip the sample
            pass
        memory.append(rss_mb(processes(stack, "triggerer")))
        time.sleep(1.0)
    elapsed = time.monotonic() - began
    everything = processes(stack)  # the reschedule side starts and ends task processes meanwhile
    return {
        "held_seconds": elapsed,
        "slots_in_use_mean": statistics.fmean(slots) if slots else None,
        "slots_in_use_max": max(slots) if slots else None,
        "triggerer_cpu_percent": 100 * (cpu_seconds(triggerer) - cpu_before) / elapsed,
        "triggerer_rss_mb_max": max(memory),
        "stack_cpu_percent_lower_bound": 100 * (cpu_seconds(everything) - all_before) / elapsed,
    }


def approve_all(stack: LocalAirflow, approval_ids: list[str]) -> list[int]:
    """Approve every record through the plugin's API, DECIDERS at a time; return the HTTP statuses."""

    def approve(approval_id: str) -> int:
        status, _ = stack.api(
            "POST",
            f"/incident-response/api/approvals/{quote(approval_id)}/decisions",
            {"decision": "approve", "comment": "benchmark"},
        )
        return status

    with ThreadPoolExecutor(DECIDERS) as pool:
        return list(pool.map(approve, approval_ids))


def patient(check: Callable[[], bool | None]) -> Callable[[], bool | None]:
    """Let a poll whose request timed out (an overloaded API server) count as "not yet"."""

    def polled() -> bool | None:
        try:
            return check()
        except TimeoutError:
            return None

    return polled


def run_mode(stack: LocalAirflow, store: IncidentStore, mode: str, count: int, hold_seconds: float) -> dict:
    """Make `count` incidents wait in one mode, measure the wait, approve them all, time the finish."""
    dag_id = DAGS[mode]
    pairs = create_records(store, dag_id, count)
    began = time.monotonic()
    for run_id, approval_id in pairs:
        stack.trigger(dag_id, {"approval_id": approval_id}, run_id=run_id)
    waiting_states = ("deferred",) if mode == "deferrable" else ("up_for_reschedule", "running", "queued")

    @patient
    def all_waiting() -> bool | None:
        if mode == "deferrable":
            return True if count_tasks(stack, dag_id, waiting_states) >= count else None
        # A reschedule sensor waits once it has poked: scheduled again for its next poke counts,
        # never started does not (under load some are always between two pokes).
        # (A run that failed meanwhile, see below, has no sensor left to start.)
        return True if never_started(stack, dag_id) == 0 else None

    stack.wait_until(all_waiting, 120 + 10.0 * count, f"{count} {mode} waits", interval=2.0)
    settled = time.monotonic() - began
    print(
        f"{mode}: {count} waiting {settled:.1f} s after the first trigger; holding {hold_seconds:g} s",
        flush=True,
    )
    figures = hold(stack, hold_seconds)

    approved_at = time.monotonic()
    statuses = approve_all(stack, [a for _, a in pairs])
    decided = time.monotonic() - approved_at

    @patient
    def all_ended() -> bool | None:
        ended = count_runs(stack, dag_id, "success") + count_runs(stack, dag_id, "failed")
        return True if ended >= count else None

    stack.wait_until(
        all_ended,
        120 + 10.0 * count,
        f"{count} {mode} runs to end",
        interval=0.5,
    )
    finished = time.monotonic() - approved_at
    # A run can fail before its decision: Airflow fails a rescheduled sensor whose poke the executor
    # reports done while the scheduler has already queued it again ("state changed externally").
    failed = count_runs(stack, dag_id, "failed")
    print(
        f"{mode}: approved in {decided:.1f} s, all runs done {finished:.1f} s after the first decision",
        flush=True,
    )
    return {
        **figures,
        "incidents": count,
        "seconds_until_all_waiting": settled,
        "seconds_to_approve_all": decided,
        "seconds_until_all_done": finished,
        "decisions_refused": sum(s != 200 for s in statuses),
        "runs_failed": failed,
    }


def main() -> int:
    """Start the stack, measure each mode, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=200, help="approvals waiting at once (default 200)")
    parser.add_argument(
        "--hold", type=float, default=30.0, help="seconds of sampling while all wait (default 30)"
    )
    parser.add_argument("--modes", default="deferrable,reschedule", help="comma-separated, in order")
    parser.add_argument("--airflow-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME (logs)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(DAGS):
        parser.error(f"--modes takes {', '.join(DAGS)}")
    tuning = parse_env(args.airflow_env)
    results: dict[str, dict] = {}
    with airflow_stack("waiting", dag_files=[DAG_FILE], extra_env=tuning, keep_home=args.keep_home) as stack:
        store = IncidentStore.from_url(f"sqlite:///{stack.home / 'incident_store.db'}")
        for mode in modes:
            stack.wait_for_dag(DAGS[mode], 180, fail_on_import_error=True)
            stack.unpause(DAGS[mode])
        for mode in modes:
            results[mode] = run_mode(stack, store, mode, args.incidents, args.hold)
    print(f"\n{args.incidents} incidents waiting for approval at once")
    fields = [
        ("worker slots in use (mean)", "slots_in_use_mean"),
        ("worker slots in use (max)", "slots_in_use_max"),
        ("triggerer CPU %", "triggerer_cpu_percent"),
        ("triggerer RSS MiB (max)", "triggerer_rss_mb_max"),
        ("whole stack CPU %", "stack_cpu_percent_lower_bound"),
        ("s from bulk approval to all done", "seconds_until_all_done"),
        ("s to post the approvals", "seconds_to_approve_all"),
        ("runs failed", "runs_failed"),
    ]
    print_table([[label, *(results[m][key] for m in modes)] for label, key in fields], ["", *modes])
    write_result("waiting", {"incidents": args.incidents, "airflow_env": tuning, "modes": results})
    return 0 if all(r["runs_failed"] == 0 and r["decisions_refused"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
