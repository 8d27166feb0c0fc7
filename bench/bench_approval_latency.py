"""Benchmark how soon work resumes after a human approves: our approval record against Airflow's HITL.

    .venv/bin/python bench/bench_approval_latency.py [--trials 10] [--answer-after 5]
        [--jitter 1] [--immediate 5] [--seed 1] [--airflow-env KEY=VALUE ...] [--keep-home]

One embedded Airflow (scripts/local_airflow: api-server, scheduler, dag-processor, triggerer on
the embedded PostgreSQL + LocalExecutor, loopback, a free port) whose DAGs folder holds a copy of
dags/incident_response.py and bench/dags/approval_operator_bench.py; plugins are the repo's.
Trials alternate between the two sides, one run at a time:

ours    trigger incident_response with a critical alert, wait until `wait_for_approval` is deferred,
        wait --answer-after seconds (--ours-answer-after 0 approves at once), approve through the
        plugin's API (POST /incident-response/api/approvals/{id}/decisions), which ends the deferred
        sensor itself;
        latency = execute_fix.start_date - the record's decided_at.
theirs  trigger approval_operator_bench, wait until `approve` (Airflow's ApprovalOperator) is
        awaiting_input, wait --answer-after seconds (answering within about a second fails the task
        on Airflow 3.3.2, see docs/architecture.md), answer through Airflow's REST API
        (PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approve/-1/hitlDetails);
        latency = after_approval.start_date - the answer's responded_at.

Each answer comes a further 0..--jitter seconds later, stratified per side (trial i of n draws from
the i-th n-th of the range, in shuffled order): the scheduler loop sleeps a second when idle, so
how soon a decision is picked up depends on where in that loop it lands. A fixed delay, or one
random draw shared by both sides, can land one side's answers just after the loop and the other's
just before it, making either look faster by phase alone; stratifying spreads each side's answers
evenly over the loop.

Then --immediate trials per side are answered the moment the task waits (no delay, no jitter): ours
must never fail at any timing; theirs is expected to on Airflow 3.3.2.

All timestamps are the servers' own (same machine, same clock). Each side also gets one warm-up run
that is not counted. Prints figures, a breakdown of where the time goes, the ratio ours / theirs of
the delayed answers (target <= 1.0) and the failures of every phase; writes
bench/results/approval_latency.json. Asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from common import REPO, airflow_stack, comparison, distribution, parse_env, percentile, write_result

# Stdlib-only harness; importing Airflow here would configure it for this process, not the stack's.
from scripts.local_airflow import LocalAirflow, LocalAirflowError

OURS_DAG = "incident_response"
THEIRS_DAG = "approval_operator_bench"
DAG_FILES = (REPO / "dags" / "incident_response.py", REPO / "bench" / "dags" / "approval_operator_bench.py")
CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}
WAITING_STATES = ("awaiting_input", "deferred")
STEP_TIMEOUT = 240.0
TARGET = 1.0


@dataclass
class Trial:
    """One measured approval: the latency, and the timestamps it is made of."""

    side: str
    run_id: str
    latency: float | None = None
    error: str | None = None
    steps: dict[str, float] = field(default_factory=dict)


def parse_time(value: str | None) -> datetime:
    """Parse an ISO 8601 timestamp from the API."""
    if not value:
        raise ValueError("missing timestamp")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds(start: str | datetime, end: str | datetime) -> float:
    """Return seconds from start to end."""
    begin = start if isinstance(start, datetime) else parse_time(start)
    finish = end if isinstance(end, datetime) else parse_time(end)
    return (finish - begin).total_seconds()


def task_instances(stack: LocalAirflow, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Return the run's task instances by task id."""
    status, body = stack.api(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    )
    if status != 200:
        raise LocalAirflowError(f"task instances of {run_id}: HTTP {status} {body!r}")
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def wait_for_task_state(
    stack: LocalAirflow, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...]
) -> None:
    """Wait until a task reaches one of `states`; fail early if anything in the run failed."""

    def reached() -> bool | None:
        current = stack.task_states(dag_id, run_id)
        failed = {t: s for t, s in current.items() if s in ("failed", "upstream_failed")}
        if failed:
            raise LocalAirflowError(f"tasks failed: {failed}")
        return True if current.get(task_id) in states else None

    stack.wait_until(reached, STEP_TIMEOUT, f"{task_id} of {run_id} to be {'/'.join(states)}", interval=0.2)


def run_ours(stack: LocalAirflow, trial: Trial, answer_after: float) -> Trial:
    """Approve an incident through the plugin's API; measure until execute_fix starts."""
    stack.trigger(OURS_DAG, CRITICAL, run_id=trial.run_id)
    wait_for_task_state(stack, OURS_DAG, trial.run_id, "wait_for_approval", ("deferred",))
    time.sleep(answer_after)
    status, body = stack.api("GET", f"/incident-response/api/approvals?dag_run_id={quote(trial.run_id)}")
    if status != 200 or len(body["approvals"]) != 1:
        raise LocalAirflowError(f"approval record of {trial.run_id}: HTTP {status} {body!r}")
    record_id = body["approvals"][0]["id"]
    status, decided = stack.api(
        "POST",
        f"/incident-response/api/approvals/{record_id}/decisions",
        {"decision": "approve", "comment": "benchmark"},
    )
    if status != 200 or decided.get("state") != "approved":
        raise LocalAirflowError(f"decision on {record_id}: HTTP {status} {decided!r}")
    decided_at = parse_time(decided["decided_at"])
    stack.wait_for_run(OURS_DAG, trial.run_id, timeout=STEP_TIMEOUT)
    tis = task_instances(stack, OURS_DAG, trial.run_id)
    sensor, branch, fix = tis["wait_for_approval"], tis["approval_decision"], tis["execute_fix"]
    trial.latency = seconds(decided_at, fix["start_date"])
    trial.steps = {
        "decision -> sensor done": seconds(decided_at, sensor["end_date"]),
        "sensor done -> branch scheduled": seconds(sensor["end_date"], branch["scheduled_when"]),
        "branch scheduled -> queued": seconds(branch["scheduled_when"], branch["queued_when"]),
        "branch queued -> start": seconds(branch["queued_when"], branch["start_date"]),
        "branch run": seconds(branch["start_date"], branch["end_date"]),
        "branch done -> fix start": seconds(branch["end_date"], fix["start_date"]),
    }
    return trial


def run_theirs(stack: LocalAirflow, trial: Trial, answer_after: float) -> Trial:
    """Answer an ApprovalOperator through Airflow's REST API; measure until the downstream task starts."""
    stack.trigger(THEIRS_DAG, {}, run_id=trial.run_id)
    wait_for_task_state(stack, THEIRS_DAG, trial.run_id, "approve", WAITING_STATES)
    time.sleep(answer_after)
    path = (
        f"/api/v2/dags/{THEIRS_DAG}/dagRuns/{quote(trial.run_id, safe='')}"
        "/taskInstances/approve/-1/hitlDetails"
    )
    status, answer = stack.api("PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
    if status != 200:
        raise LocalAirflowError(f"HITL answer for {trial.run_id}: HTTP {status} {answer!r}")
    responded_at = parse_time(answer["responded_at"])
    stack.wait_for_run(THEIRS_DAG, trial.run_id, timeout=STEP_TIMEOUT)
    tis = task_instances(stack, THEIRS_DAG, trial.run_id)
    approve, after = tis["approve"], tis["after_approval"]
    trial.latency = seconds(responded_at, after["start_date"])
    trial.steps = {
        "answer -> approve scheduled": seconds(responded_at, approve["scheduled_when"]),
        "approve scheduled -> queued": seconds(approve["scheduled_when"], approve["queued_when"]),
        "approve queued -> done": seconds(approve["queued_when"], approve["end_date"]),
        "approve done -> downstream start": seconds(approve["end_date"], after["start_date"]),
    }
    return trial


def measured(side: str, label: str, run: Callable[[Trial], Trial]) -> Trial:
    """Run one trial; a failure is counted, not raised."""
    trial = Trial(side, f"bench-{side}-{label}-{uuid.uuid4().hex[:6]}")
    try:
        return run(trial)
    except (LocalAirflowError, TimeoutError, KeyError, ValueError) as exc:
        trial.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        return trial


def jittered(rng: random.Random, count: int, spread: float) -> list[float]:
    """Return `count` delays drawn uniformly from 0..spread."""
    return [rng.uniform(0.0, spread) for _ in range(count)]


def stratified(rng: random.Random, count: int, spread: float) -> list[float]:
    """Return `count` delays covering 0..spread evenly: one per equal slice, at random in it, shuffled."""
    delays = [(slot + rng.random()) * spread / count for slot in range(count)]
    rng.shuffle(delays)
    return delays


def report(side: str, trials: list[Trial]) -> None:
    """Print one side's figures."""
    ok = [t for t in trials if t.latency is not None]
    failed = [t for t in trials if t.latency is None]
    print(f"\n{side}: {len(ok)} measured, {len(failed)} failed")
    for t in failed:
        print(f"  failed {t.run_id}: {t.error}")
    if not ok:
        return
    latencies = [t.latency for t in ok]
    print(
        f"  latency  median {statistics.median(latencies):5.2f} s   p90 {percentile(latencies, 0.9):5.2f} s"
        f"   min {min(latencies):5.2f} s   max {max(latencies):5.2f} s"
    )
    for step in ok[0].steps:
        values = [t.steps[step] for t in ok if not math.isnan(t.steps[step])]
        if not values:
            continue
        print(f"    {step:<34} median {statistics.median(values):5.2f} s   max {max(values):5.2f} s")


def run_phase(
    stack: LocalAirflow,
    phase: str,
    sides: tuple[str, ...],
    count: int,
    warmup: int,
    answer_after: dict[str, float],
    jitter: float,
    rng: random.Random,
    deadline: float | None = None,
) -> dict[str, list[Trial]]:
    """Run `warmup` + `count` trials per side, alternating, until the deadline; return the counted ones."""
    runs = {"ours": run_ours, "theirs": run_theirs}
    delays = {side: [*jittered(rng, warmup, jitter), *stratified(rng, count, jitter)] for side in sides}
    trials: dict[str, list[Trial]] = {side: [] for side in sides}
    for index in range(warmup + count):
        if deadline is not None and time.monotonic() > deadline:
            print(f"budget spent: {phase} stops after {index} trials")
            break
        label = f"{phase}-w{index}" if index < warmup else f"{phase}-{index - warmup:02d}"
        done = [
            measured(
                side,
                label,
                lambda trial, side=side, delay=answer_after[side] + delays[side][index]: runs[side](
                    stack, trial, delay
                ),
            )
            for side in sides
        ]
        counted = index >= warmup
        if counted:
            for trial in done:
                trials[trial.side].append(trial)
        print(
            f"trial {label}{'' if counted else ' (warm-up)'}: "
            + "   ".join(
                f"{t.side} {t.latency:5.2f} s" if t.latency is not None else f"{t.side} FAILED" for t in done
            ),
            flush=True,
        )
    return trials


def phase_result(trials: dict[str, list[Trial]], answer_after: dict[str, float], jitter: float) -> dict:
    """Return a phase's figures and trials for the JSON result."""
    return {
        "answer_after": answer_after,
        "jitter": jitter,
        "figures": {
            side: distribution([t.latency for t in ts if t.latency is not None])
            for side, ts in trials.items()
        },
        "failures": {side: sum(t.latency is None for t in ts) for side, ts in trials.items()},
        "trials": {side: [vars(t) for t in ts] for side, ts in trials.items()},
    }


def main() -> int:
    """Start the stack, run the trials, print the figures, write the JSON, stop the stack."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10, help="measured trials per side (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted trials per side first (default 1)")
    parser.add_argument(
        "--answer-after",
        type=float,
        default=5.0,
        help="seconds from waiting (awaiting_input / deferred) to the answer, both sides (default 5)",
    )
    parser.add_argument(
        "--ours-answer-after",
        type=float,
        default=None,
        help="override --answer-after for ours only (0: approve the moment the sensor is deferred)",
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=1.0,
        help="spread the answers over a further 0..JITTER s (default 1: one idle scheduler loop)",
    )
    parser.add_argument(
        "--immediate",
        type=int,
        default=5,
        help="then this many trials per side answered the moment the task waits (default 5; 0: skip)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the jitter (default 1)")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=0,
        help="start no delayed trial after this long; the immediate ones still run (0: no limit)",
    )
    parser.add_argument(
        "--airflow-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the Airflow processes, e.g. AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC=1",
    )
    parser.add_argument(
        "--sides",
        choices=("both", "ours", "theirs"),
        default="both",
        help="measure both sides (default) or one, e.g. to probe --answer-after on theirs alone",
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME (logs)")
    args = parser.parse_args()
    tuning = parse_env(args.airflow_env)
    sides = ("ours", "theirs") if args.sides == "both" else (args.sides,)
    ours_after = args.answer_after if args.ours_answer_after is None else args.ours_answer_after
    delayed_after = {"ours": ours_after, "theirs": args.answer_after}
    rng = random.Random(args.seed)
    phases: dict[str, dict] = {}
    print(f"extra env {tuning or '-'}")
    with airflow_stack("approval", dag_files=DAG_FILES, extra_env=tuning, keep_home=args.keep_home) as stack:
        for dag_id in (OURS_DAG, THEIRS_DAG):
            stack.wait_for_dag(dag_id, 180, fail_on_import_error=True)
            stack.unpause(dag_id)
        deadline = time.monotonic() + args.budget_minutes * 60 if args.budget_minutes else None
        delayed = run_phase(
            stack, "delayed", sides, args.trials, args.warmup, delayed_after, args.jitter, rng, deadline
        )
        phases["delayed"] = phase_result(delayed, delayed_after, args.jitter)
        immediate: dict[str, list[Trial]] = {}
        if args.immediate:
            at_once = dict.fromkeys(sides, 0.0)
            immediate = run_phase(stack, "immediate", sides, args.immediate, 0, at_once, 0.0, rng)
            phases["immediate"] = phase_result(immediate, at_once, 0.0)
    within = f"+ 0..{args.jitter:g} s" if args.jitter else ""
    if "ours" in sides:
        report(f"ours (approval record, plugin API, answered {ours_after:g} s {within} in)", delayed["ours"])
    if "theirs" in sides:
        report(
            f"theirs (ApprovalOperator, HITL REST, answered {args.answer_after:g} s {within} in)",
            delayed["theirs"],
        )
    for side in immediate:
        report(f"{side}, answered the moment the task waits", immediate[side])
    rows = []
    if len(sides) == 2:
        figures = phases["delayed"]["figures"]
        rows = [
            comparison(
                "Decision -> fix", stat, figures["ours"][stat], figures["theirs"][stat], f"<= {TARGET}x"
            )
            for stat in ("median", "p95")
        ]
        for row in rows:
            shown = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            print(
                f"\nratio ({row['metric']}, answered {args.answer_after:g} s in) {shown} "
                f"(target <= {TARGET}x)"
            )
    failures = {side: sum(p["failures"].get(side, 0) for p in phases.values()) for side in sides}
    print(f"failures over every answer timing: {failures} (target: none for ours)")
    write_result(
        "approval_latency",
        {"phases": phases, "failures": failures, "airflow_env": tuning, "comparisons": rows},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
