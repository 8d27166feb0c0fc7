"""Benchmark 1,000 approvals waiting at once on the Celery topology (PostgreSQL, Redis, two workers).

    .venv/bin/python bench/bench_celery_waiting.py [--count 1000] [--hold 30] [--keep-home]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 6379. Starts `make
run-celery`'s topology (scripts/local_airflow CeleryAirflow: api-server, scheduler, dag-processor,
triggerer, two Celery workers of 4 slots) on throw-away databases, with a DAGs folder holding only
bench/dags/approval_wait_bench.py. Its `approval_wait_then_fix` DAG is the real `ApprovalSensor`
(deferrable, the shared store poll of triggers/approval_watch.py) followed by a PythonOperator named
`execute_fix`. The benchmark creates --count incidents with a pending approval each in the stack's
PostgreSQL incident store (what request_approval does, without Slack), triggers one run per record
through the REST API, then:

1. waits until every sensor is deferred (the time it took is printed);
2. for --hold seconds samples the default pool's used slots, the triggerer's CPU and RSS (with the
   trigger runner it forks) and the incident store's transactions per second (pg_stat_database);
3. approves every record through the plugin's API (8 at a time), and times from the first decision
   until every `execute_fix` has started (task_instance.start_date in the metadata DB).

Prints one table and writes bench/results/celery_waiting.json. Asserts nothing about time. At 1,000
runs this takes 20 to 30 minutes on 2 cores: every sensor and every fix is a real task process.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench_waiting import approve_all, count_tasks, create_records, hold, patient
from common import REPO, print_table, write_result

from include.store import IncidentStore
from scripts.local_airflow import LocalAirflow
from scripts.local_airflow.celery_stack import CeleryAirflow
from tests.e2e import test_celery_topology as scenario
from tests.e2e.conftest import free_port

DAG_FILE = REPO / "bench" / "dags" / "approval_wait_bench.py"
DAG_ID = "approval_wait_then_fix"
TRIGGERS = 8
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def pg(database: str):
    """Return an autocommit psycopg2 connection to one database of the local server."""
    import psycopg2

    conn = psycopg2.connect(**scenario.PG, dbname=database, connect_timeout=5)
    conn.autocommit = True
    return conn


def store_transactions(database: str) -> int:
    """Return the transactions the database has committed and rolled back so far."""
    with pg("postgres") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
        )
        return int(cur.fetchone()[0])


def fixes_started(meta_db: str) -> tuple[int, datetime | None]:
    """Return how many execute_fix tasks have started, and the latest start."""
    with pg(meta_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), max(start_date) FROM task_instance "
            "WHERE dag_id = %s AND task_id = 'execute_fix' AND start_date IS NOT NULL",
            (DAG_ID,),
        )
        count, latest = cur.fetchone()
    return int(count), latest


def measure(stack: LocalAirflow, store: IncidentStore, name: str, count: int, hold_seconds: float) -> dict:
    """Make `count` approvals wait, sample the wait, approve them all, time every fix's start."""
    pairs = create_records(store, DAG_ID, count)
    began = time.monotonic()
    with ThreadPoolExecutor(TRIGGERS) as pool:
        list(pool.map(lambda pair: stack.trigger(DAG_ID, {"approval_id": pair[1]}, run_id=pair[0]), pairs))
    triggered = time.monotonic() - began
    print(f"{count} runs triggered in {triggered:.1f} s", flush=True)

    @patient
    def all_deferred() -> bool | None:
        stack.check_alive()
        return True if count_tasks(stack, DAG_ID, ("deferred",)) >= count else None

    stack.wait_until(all_deferred, 600 + 3.0 * count, f"{count} deferred waits", interval=5.0)
    settled = time.monotonic() - began
    print(f"{count} waiting {settled:.1f} s after the first trigger; holding {hold_seconds:g} s", flush=True)

    store_db = f"{name}_store"
    before, clock = store_transactions(store_db), time.monotonic()
    figures = hold(stack, hold_seconds)
    store_tps = (store_transactions(store_db) - before) / (time.monotonic() - clock)

    approved_at = datetime.now(UTC)
    clock = time.monotonic()
    statuses = approve_all(stack, [a for _, a in pairs])
    decided = time.monotonic() - clock
    print(f"{count} approved in {decided:.1f} s", flush=True)

    @patient
    def all_fixes_started() -> bool | None:
        stack.check_alive()
        return True if fixes_started(f"{name}_meta")[0] >= count else None

    stack.wait_until(all_fixes_started, 600 + 3.0 * count, f"{count} execute_fix starts", interval=2.0)
    _, latest = fixes_started(f"{name}_meta")
    return {
        **figures,
        "approvals_waiting": count,
        "seconds_to_trigger_all": round(triggered, 1),
        "seconds_until_all_deferred": round(settled, 1),
        "store_transactions_per_second": round(store_tps, 1),
        "seconds_to_approve_all": round(decided, 1),
        "seconds_from_first_decision_to_every_execute_fix_started": round(
            (latest - approved_at).total_seconds(), 1
        ),
        "decisions_refused": sum(s != 200 for s in statuses),
    }


def main() -> int:
    """Start the Celery topology, measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000, help="approvals waiting at once (default 1000)")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to sample the wait (default 30)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME (logs)")
    args = parser.parse_args()
    missing = scenario.services_reachable()
    if missing:
        print(f"skipped: {missing}", file=sys.stderr)
        return 1

    name = f"ir_bench_cw_{uuid.uuid4().hex[:8]}"
    broker_db = random.randint(1, 15)
    home = Path(tempfile.mkdtemp(prefix="bench-celery-waiting-"))
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    env = scenario.celery_env(
        name,
        broker_db,
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        # A triggerer runs 1,000 triggers by default; leave room for the count asked for.
        AIRFLOW__TRIGGERER__CAPACITY=str(max(1000, args.count + 100)),
    )
    stack = CeleryAirflow(home / "airflow", free_port(), extra_env=env, inherit_airflow_env=False)
    store = None
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(300)
        stack.login("admin")
        stack.wait_for_dag(DAG_ID, timeout=300, fail_on_import_error=True)
        store = IncidentStore.from_url(f"{PG_URL}/{name}_store")
        result = measure(stack, store, name, args.count, args.hold)
    except Exception:
        print(f"Airflow process logs:\n{stack.log_tails(15)}", file=sys.stderr)
        raise
    finally:
        stack.stop()
        if store is not None:
            store.engine.dispose()
        scenario.drop_databases(name)
        scenario.forget_broker_keys(broker_db, name)
        if args.keep_home:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    rows = [[key, value] for key, value in result.items()]
    print()
    print_table(rows, ["Celery, approvals waiting at once", "value"])
    write_result("celery_waiting", {"figures": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
