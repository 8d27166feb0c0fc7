"""Benchmark the scale-out topology: Celery on PostgreSQL and Redis against the embedded LocalExecutor.

    .venv/bin/python bench/bench_scale_out.py [--skip-local] [--waiting 1000] [--json PATH]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 6379; every database it makes
has a unique name and is dropped at the end. In one run it measures:

1. 30 incidents at once (6 info, 6 warning, 18 critical: 6 approved, 6 rejected, 6 left to expire
   after 60 s) on `make run-celery`'s topology (CeleryAirflow, two workers of 4 slots), then the same
   30 on `make run`'s (LocalAirflow, LocalExecutor with 8 slots): the wall time until the 24 runs
   not waiting for an expiry ended, and until all 30 ended.
2. On Celery, 30 critical incidents waiting for approval at once: the default pool's running slots,
   Celery's `inspect active` on each worker, the triggerer's CPU and RSS (it and its children, from
   /proc), then one bulk approval through the API and the time until every `execute_fix` started.
3. `--waiting` approvals (1,000) waiting at once in one triggerer-like process on a PostgreSQL store
   (bench/waiting_approvals.py): the real ApprovalTrigger with its shared poll, and the per-trigger
   poll it replaced; CPU, RSS, store queries per second, and bulk approval to every trigger fired.
   Running 1,000 DAG runs' tasks would take this 2-core machine most of an hour; the triggerer's
   cost of waiting is what grows with the count, and this measures exactly that code on one loop.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from include.store import IncidentStore  # noqa: E402
from scripts.local_airflow import LocalAirflow  # noqa: E402
from scripts.local_airflow.celery_stack import CeleryAirflow  # noqa: E402
from tests.e2e import test_celery_topology as scenario  # noqa: E402
from tests.e2e.conftest import free_port  # noqa: E402

DEADLINE_SECONDS = 60
DEFAULT_JSON = REPO / "bench" / "results" / "scale_out.json"
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def proc_usage(pids: set[int]) -> tuple[float, float]:
    """Return (CPU seconds, RSS MiB) summed over pids, from /proc."""
    cpu, rss = 0.0, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss += (
            next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            / 1024
        )
    return cpu, rss


def triggerer_pids(stack: LocalAirflow) -> set[int]:
    """Return the triggerer's process and the trigger runner it forks."""
    from scripts.local_airflow import processes

    root = stack.components["triggerer"].pid
    return {root, *processes.descendants([root])}


def timed_mix(stack: LocalAirflow, store: IncidentStore, tag: str) -> dict[str, float]:
    """Run the 30-incident mix; return the seconds until the 24 runs not expiring, and all 30, ended."""
    started = time.monotonic()
    runs = scenario.trigger_mix(stack, tag)
    critical = [r for r, s in runs.items() if s == "critical"]
    decisions, _ = scenario.decide_as_they_appear(stack, store, critical, scenario.DECIDED, 900)
    expiring = {r for r, d in decisions.items() if d == "expire"}
    states = scenario.wait_terminal(stack, set(runs) - expiring, 900)
    decided = time.monotonic() - started
    states.update(scenario.wait_terminal(stack, expiring, 900))
    return {
        "decided_runs_seconds": round(decided, 1),
        "all_runs_seconds": round(time.monotonic() - started, 1),
        "failed_runs": sum(s != "success" for s in states.values()),
    }


def waiting_30(stack: CeleryAirflow, store: IncidentStore, tag: str) -> dict[str, Any]:
    """Let 30 approvals wait at once; read slots and the triggerer; bulk-approve; time every execute_fix."""
    runs = scenario.trigger_mix(stack, tag, {"critical": 30})

    def all_deferred() -> bool:
        stack.check_alive()
        return all(
            scenario.task_instances(stack, r).get("wait_for_approval", {}).get("state") == "deferred"
            for r in runs
        )

    scenario.poll(all_deferred, 900, "30 approvals to wait", interval=3.0)
    pids = triggerer_pids(stack)
    cpu0, _ = proc_usage(pids)
    time.sleep(10)
    cpu1, rss = proc_usage(pids)
    result: dict[str, Any] = {
        "pool": {k: v for k, v in scenario.default_pool(stack).items() if k.endswith("_slots")},
        "celery_active": scenario.active_celery_tasks(stack.broker_url),
        "triggerer_cpu_percent": round(10 * (cpu1 - cpu0), 1),
        "triggerer_rss_mib": round(rss, 1),
    }
    records = {r.run_id: r.id for r in store.approvals.find(limit=500) if r.run_id in runs}
    approved_at = datetime.now().astimezone()
    for record_id in records.values():
        scenario.decide(stack, record_id, "approve")
    result["bulk_approval_seconds"] = round((datetime.now().astimezone() - approved_at).total_seconds(), 1)

    def fix_started() -> list[Any] | None:
        stack.check_alive()
        starts = [scenario.task_instances(stack, r).get("execute_fix", {}).get("start_date") for r in runs]
        return starts if all(starts) else None

    starts = scenario.poll(fix_started, 900, "every execute_fix to start", interval=2.0)
    last = max(datetime.fromisoformat(s) for s in starts)
    result["approval_to_every_execute_fix_started_seconds"] = round((last - approved_at).total_seconds(), 1)
    scenario.wait_terminal(stack, set(runs), 900)
    return result


def celery_part(home: Path) -> dict[str, Any]:
    """Measure 1 and 2 on a fresh Celery topology."""
    name = f"ir_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    broker_db = random.randint(1, 15)
    env = scenario.celery_env(name, broker_db, INCIDENT_APPROVAL_DEADLINE_SECONDS=str(DEADLINE_SECONDS))
    stack = CeleryAirflow(home / "celery", free_port(), extra_env=env, inherit_airflow_env=False)
    store = None
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(300)
        stack.login("admin")
        stack.wait_for_dag(scenario.DAG_ID, timeout=300, fail_on_import_error=True)
        stack.unpause(scenario.DAG_ID)
        store = IncidentStore.from_url(f"{PG_URL}/{name}_store")
        mix = timed_mix(stack, store, f"bench-{uuid.uuid4().hex[:6]}")
        print(f"celery: 30 incidents {mix}", flush=True)
        waiting = waiting_30(stack, store, f"bench-wait-{uuid.uuid4().hex[:6]}")
        print(f"celery: 30 waiting {waiting}", flush=True)
        return {"mix": mix, "waiting_30": waiting, "ready_seconds": round(stack.ready_after or 0, 1)}
    finally:
        stack.stop()
        if store is not None:
            store.engine.dispose()
        scenario.drop_databases(name)
        scenario.forget_broker_keys(broker_db, name)


def local_part(home: Path) -> dict[str, Any]:
    """Measure 1 on a fresh embedded stack (LocalExecutor, embedded PostgreSQL, SQLite store)."""
    env = {
        "INCIDENT_APPROVAL_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        "AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps({"default": ["admin"]}),
    }
    stack = LocalAirflow(home / "local", free_port(), extra_env=env, inherit_airflow_env=False)
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(300)
        stack.login("admin")
        stack.wait_for_dag(scenario.DAG_ID, timeout=300, fail_on_import_error=True)
        stack.unpause(scenario.DAG_ID)
        store = IncidentStore.from_url(f"sqlite:///{stack.home / 'incident_store.db'}")
        mix = timed_mix(stack, store, f"bench-{uuid.uuid4().hex[:6]}")
        print(f"local: 30 incidents {mix}", flush=True)
        return {"mix": mix, "ready_seconds": round(stack.ready_after or 0, 1)}
    finally:
        stack.stop()


def waiting_part(count: int) -> list[dict[str, Any]]:
    """Measure 3: `count` waiting approvals in one process, shared poll and per-trigger poll."""
    import psycopg2

    results = []
    for mode in ("shared", "per-trigger"):
        name = f"ir_bench_wait_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = psycopg2.connect(**scenario.PG, dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    str(REPO / "bench" / "waiting_approvals.py"),
                    "--store-url",
                    f"{PG_URL}/{name}",
                ]
                + ["--count", str(count), "--mode", mode],
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{count} waiting: {results[-1]}", flush=True)
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    return results


def main() -> int:
    """Run the parts asked for, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-local", action="store_true", help="do not run the LocalExecutor comparison")
    parser.add_argument("--skip-stacks", action="store_true", help="only the waiting-approvals part")
    parser.add_argument("--waiting", type=int, default=1000, help="approvals waiting at once in part 3")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    reason = scenario.services_reachable()
    if reason:
        print(reason)
        return 1
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
        if not args.skip_stacks:
            results["celery"] = celery_part(Path(tmp))
            if not args.skip_local:
                results["local"] = local_part(Path(tmp))
    if args.waiting:
        results["waiting"] = waiting_part(args.waiting)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
