"""The `make run-celery` topology, on fresh PostgreSQL databases and a Redis broker: 30 incidents at once.

CeleryAirflow starts the api-server, scheduler, dag-processor, triggerer and two Celery workers on
throw-away databases it creates on the local PostgreSQL (dropped afterwards), a Redis database of
its own and a queue no other stack consumes. 30 incidents are triggered at once: 6 info, 6 warning
and 18 critical. The first 12 critical approval records to appear are decided (approved and rejected
in turn) through the API; the last 6 are left to expire, and while they wait (deferred) and the
other runs' tasks execute, the test asks Celery what each worker executes. The scenario runs once
per module; each test checks one promise.

    .venv/bin/pytest -m celery
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from include.store import IncidentStore
from scripts.local_airflow import LocalAirflow, poll
from scripts.local_airflow.celery_stack import CeleryAirflow
from tests.e2e.conftest import READY_TIMEOUT, REPO, free_port

# The scenario (start, 30 runs, 6 expiries) runs inside the first test's fixture: more than the suite's 300 s.
pytestmark = [pytest.mark.celery, pytest.mark.timeout(3600)]

DAG_ID = "incident_response"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
BROKER = "redis://127.0.0.1:6379"
# Long enough for the last 6 records' sensors to defer on a busy machine, short enough to wait out.
DEADLINE_SECONDS = 90
# Each task takes 5-20 s on a busy 2-core machine; the runs advance together, 8 slots at a time.
RUN_TIMEOUT = 1800.0
ALERTS: dict[str, dict[str, Any]] = {
    "critical": {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "metrics": {"pressure_bar": 9.4},
    },
    "warning": {"device_id": "SENSOR-T-88", "error": "STUCK_READING", "message": "Reading unchanged"},
    "info": {"device_id": "MOTOR-21", "error": "MAINTENANCE_DUE", "severity": "info"},
}
# Incidents of each kind: 6 info, 6 warning, and 3 x 6 critical (approved, rejected, expiring): 30.
# CELERY_E2E_PER_KIND=2 runs the same scenario with 10, for a quick look on a busy machine.
PER_KIND = int(os.environ.get("CELERY_E2E_PER_KIND", "6"))
MIX = {"critical": 3 * PER_KIND, "warning": PER_KIND, "info": PER_KIND}
DECIDED = 2 * PER_KIND  # the first critical records to appear; the rest expire


@dataclass
class Outcome:
    """What the scenario saw."""

    runs: dict[str, str]  # run id -> severity
    decisions: dict[str, str] = field(default_factory=dict)  # run id -> approve | reject | expire
    records: dict[str, str] = field(default_factory=dict)  # run id -> approval record id
    waiting: dict[str, Any] = field(default_factory=dict)  # what held slots while only approvals waited
    wall_seconds: float = 0.0


# -- helpers the benchmark shares ------------------------------------------------------------------


def services_reachable() -> str | None:
    """Return why PostgreSQL or Redis cannot be used here, or None."""
    import psycopg2
    import redis

    try:
        psycopg2.connect(**PG, dbname="postgres", connect_timeout=3).close()
        redis.Redis.from_url(f"{BROKER}/0", socket_timeout=3).ping()
    except (psycopg2.OperationalError, redis.RedisError) as err:
        return f"PostgreSQL on 127.0.0.1:5432 or Redis on 6379 is not reachable ({err})"
    return None


def celery_env(name: str, broker_db: int, **extra: str) -> dict[str, str]:
    """Return the environment of a stack on databases named after `name`, alone on its broker DB and queue."""
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}_meta",
        "AIRFLOW_CONN_INCIDENT_STORE": f"postgres://postgres@127.0.0.1:5432/{name}_store",
        "AIRFLOW__CELERY__BROKER_URL": f"{BROKER}/{broker_db}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": name,
        "AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps({"default": ["admin"]}),
        **extra,
    }


def drop_databases(name: str) -> None:
    """Drop the stack's two databases."""
    import psycopg2

    conn = psycopg2.connect(**PG, dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        for suffix in ("meta", "store"):
            cur.execute(f'DROP DATABASE IF EXISTS "{name}_{suffix}" WITH (FORCE)')
    conn.close()


def forget_broker_keys(broker_db: int, queue: str) -> None:
    """Delete the stack's queue and bindings from its Redis database; other keys may be another stack's."""
    import redis

    client = redis.Redis.from_url(f"{BROKER}/{broker_db}")
    keys = list(client.scan_iter(match=f"*{queue}*", count=500))
    if keys:
        client.delete(*keys)


def trigger_mix(stack: LocalAirflow, tag: str, mix: dict[str, int] = MIX) -> dict[str, str]:
    """Trigger the mix back to back; return {run id: severity}."""
    runs: dict[str, str] = {}
    for severity, count in mix.items():
        for n in range(count):
            run_id = f"{tag}-{severity}-{n:02d}"
            stack.trigger(DAG_ID, ALERTS[severity], run_id=run_id)
            runs[run_id] = severity
    return runs


def run_states(stack: LocalAirflow, run_ids: set[str]) -> dict[str, str]:
    """Return {run id: state} of the given runs."""
    body = stack._expect("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=200")
    return {r["dag_run_id"]: r["state"] for r in body["dag_runs"] if r["dag_run_id"] in run_ids}


def task_instances(stack: LocalAirflow, run_id: str) -> dict[str, dict[str, Any]]:
    """Return the run's task instances by task id."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    return {ti["task_id"]: ti for ti in stack._expect("GET", path)["task_instances"]}


def wait_terminal(stack: LocalAirflow, run_ids: set[str], timeout: float) -> dict[str, str]:
    """Wait until every run is success or failed; return their states."""

    def done() -> dict[str, str] | None:
        stack.check_alive()
        states = run_states(stack, run_ids)
        return (
            states if len(states) == len(run_ids) and set(states.values()) <= {"success", "failed"} else None
        )

    return poll(done, timeout, f"{len(run_ids)} runs to finish", interval=2.0)


def decide(stack: LocalAirflow, record_id: str, decision: str) -> None:
    """Decide a record through the product's API as admin."""
    status, body = stack.api(
        "POST", f"/incident-response/api/approvals/{record_id}/decisions", {"decision": decision}
    )
    assert status == 200, body


def decide_as_they_appear(
    stack: LocalAirflow, store: IncidentStore, critical: list[str], decided: int, timeout: float
) -> tuple[dict[str, str], dict[str, str]]:
    """Decide the first `decided` records to appear (approve, reject, ...); return (decisions, records)."""
    decisions: dict[str, str] = {}
    records: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(records) < len(critical):
        stack.check_alive()
        assert time.monotonic() < deadline, (
            f"only {len(records)} of {len(critical)} approval records appeared"
        )
        for record in store.approvals.find(limit=200):
            if record.run_id in critical and record.run_id not in records:
                records[record.run_id] = record.id
                if len(decisions) < decided:
                    decisions[record.run_id] = "approve" if len(decisions) % 2 == 0 else "reject"
                    decide(stack, record.id, decisions[record.run_id])
                else:
                    decisions[record.run_id] = "expire"
        time.sleep(0.5)
    return decisions, records


def _task_instance_of(args: Any) -> str:
    """Name the task instance of a Celery task's arguments: "dag/run/task <ti id>", never its token."""
    try:
        ti = json.loads(args[0]).get("ti") or {}
    except (TypeError, ValueError, IndexError, AttributeError):
        return "unreadable workload"
    return f"{ti.get('dag_id')}/{ti.get('run_id')}/{ti.get('task_id')} {ti.get('id')}"


def active_celery_tasks(broker_url: str) -> dict[str, list[str]]:
    """Return {worker hostname: the task instance of each task it executes}, from `inspect active`."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        active = app.control.inspect(timeout=3).active() or {}
    finally:
        app.close()
    # Airflow's Celery task carries the task instance's workload as its argument, with a token for
    # the Execution API: only the task instance is kept.
    return {host: [_task_instance_of(task.get("args")) for task in tasks] for host, tasks in active.items()}


def default_pool(stack: LocalAirflow) -> dict[str, Any]:
    """Return the default pool's slot counts."""
    return stack._expect("GET", "/api/v2/pools/default_pool")


def slots_while_waiting(stack: LocalAirflow, broker_url: str, waiting: list[str]) -> dict[str, Any]:
    """Once the given runs' approvals all wait (deferred), look at what holds worker slots."""

    def deferred() -> dict[str, dict[str, Any]] | None:
        stack.check_alive()
        sensors = {r: task_instances(stack, r)["wait_for_approval"] for r in waiting}
        return sensors if {ti["state"] for ti in sensors.values()} == {"deferred"} else None

    sensors = poll(deferred, RUN_TIMEOUT, f"{len(waiting)} approvals to wait deferred", interval=2.0)

    def held(active: dict[str, list[str]]) -> list[str]:
        # Task instances of the waiting approvals that a worker still executes.
        return [
            run_id
            for run_id, ti in sensors.items()
            for tasks in active.values()
            for a in tasks
            if ti["id"] in a
        ]

    # A task that just deferred is marked deferred a moment before its worker process has wound down:
    # the slot must be free within seconds, and stay free while the approvals wait.
    observed: dict[str, Any] = {}

    def released() -> bool:
        observed["active"] = active_celery_tasks(broker_url)
        return not held(observed["active"])

    try:
        poll(released, 60, "the workers to release the deferred approvals' slots", interval=1.0)
    except TimeoutError:
        pass  # reported below as held_by_waiting
    active = observed["active"]
    return {
        "deferred": len(sensors),
        "pool": default_pool(stack),
        "celery_workers": sorted(active),
        "celery_active": sum(len(tasks) for tasks in active.values()),
        "held_by_waiting": held(active),
    }


def run_scenario(stack: CeleryAirflow, store: IncidentStore, tag: str) -> Outcome:
    """Trigger the incidents, decide the first records, see the slots while the rest wait; wait for all."""
    started = time.monotonic()
    outcome = Outcome(runs=trigger_mix(stack, tag))
    critical = [r for r, s in outcome.runs.items() if s == "critical"]
    outcome.decisions, outcome.records = decide_as_they_appear(stack, store, critical, DECIDED, RUN_TIMEOUT)
    expiring = [r for r, d in outcome.decisions.items() if d == "expire"]
    outcome.waiting = slots_while_waiting(stack, stack.broker_url, expiring)
    wait_terminal(stack, set(outcome.runs), DEADLINE_SECONDS + RUN_TIMEOUT)
    outcome.wall_seconds = time.monotonic() - started
    return outcome


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CeleryAirflow, IncidentStore]]:
    """Run the Celery topology on fresh databases, its own Redis database and queue; drop them after."""
    reason = services_reachable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    name = f"ir_celery_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    broker_db = random.randint(1, 15)
    env = celery_env(name, broker_db, INCIDENT_APPROVAL_DEADLINE_SECONDS=str(DEADLINE_SECONDS))
    home = tmp_path_factory.mktemp("celery_home")
    stack = CeleryAirflow(home, free_port(), repo=REPO, extra_env=env, inherit_airflow_env=False)
    store: IncidentStore | None = None
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(READY_TIMEOUT)
        stack.login("admin")
        stack.wait_for_dag(DAG_ID, timeout=READY_TIMEOUT, fail_on_import_error=True)
        stack.unpause(DAG_ID)
        store = IncidentStore.from_url(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}_store")
        yield stack, store
    except BaseException:
        print(f"process logs:\n{stack.log_tails()}")
        raise
    finally:
        stack.stop()
        if store is not None:
            store.engine.dispose()
        drop_databases(name)
        forget_broker_keys(broker_db, name)


@pytest.fixture(scope="module")
def outcome(topology: tuple[CeleryAirflow, IncidentStore]) -> Outcome:
    """Run the scenario once for the module."""
    stack, store = topology
    try:
        result = run_scenario(stack, store, f"celery-{uuid.uuid4().hex[:6]}")
    except BaseException:
        print(f"process logs:\n{stack.log_tails()}")
        raise
    print(
        f"\n{len(result.runs)} incidents on Celery in {result.wall_seconds:.0f}s; "
        f"while {PER_KIND} approvals waited: {result.waiting}"
    )
    return result


# -- tests -----------------------------------------------------------------------------------------


def test_every_run_ends_on_the_right_branch(topology, outcome: Outcome) -> None:
    stack, _ = topology
    assert Counter(outcome.decisions.values()) == {
        "approve": PER_KIND,
        "reject": PER_KIND,
        "expire": PER_KIND,
    }
    assert set(run_states(stack, set(outcome.runs)).values()) == {"success"}
    for run_id, severity in outcome.runs.items():
        states = {task: ti["state"] for task, ti in task_instances(stack, run_id).items()}
        taken = {
            "info": "log_only",
            "warning": "create_ticket",
            "critical": "execute_fix" if outcome.decisions.get(run_id) == "approve" else "escalate",
        }[severity]
        assert states[taken] == "success", (run_id, states)
        assert states["final_report"] == "success", (run_id, states)
        if severity == "critical":
            skipped = "escalate" if taken == "execute_fix" else "execute_fix"
            assert states[skipped] == "skipped", (run_id, states)
        else:
            assert "wait_for_approval" not in states or states["wait_for_approval"] == "skipped"


def test_tasks_ran_on_both_workers(topology, outcome: Outcome) -> None:
    stack, _ = topology
    hosts = Counter(
        ti["hostname"]
        for run_id in outcome.runs
        for ti in task_instances(stack, run_id).values()
        if ti["state"] == "success"
    )
    assert set(hosts) == {stack.worker_hostname(n) for n in stack.worker_names}, hosts


def test_each_approval_record_and_device_action_is_stored_once(topology, outcome: Outcome) -> None:
    _, store = topology
    records = store.approvals.find(limit=500)
    per_run = Counter(r.run_id for r in records)
    critical = {r for r, s in outcome.runs.items() if s == "critical"}
    assert dict(per_run) == dict.fromkeys(critical, 1)
    final = {"approve": "approved", "reject": "rejected", "expire": "expired"}
    for record in records:
        assert record.state == final[outcome.decisions[record.run_id]], record
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT incident_id, action, idempotency_key, state FROM ir_actions"
        ).all()
    incident_of = {r.incident_id: r.run_id for r in records}
    actions = Counter((incident_of.get(row.incident_id), row.action) for row in rows)
    assert all(row.state == "done" for row in rows), rows
    for run_id in critical:
        expected = {(run_id, "open_bypass_valve"): 1}
        if outcome.decisions[run_id] == "approve":
            expected[(run_id, "isolate_pump")] = 1
        assert {k: v for k, v in actions.items() if k[0] == run_id} == expected
    assert len({row.idempotency_key for row in rows}) == len(rows)


def test_no_worker_slot_is_held_while_approvals_wait(outcome: Outcome) -> None:
    waiting = outcome.waiting
    # While other runs' tasks execute, the waiting approvals are deferred, counted apart from running.
    assert waiting["deferred"] == PER_KIND
    assert waiting["pool"]["deferred_slots"] >= PER_KIND
    assert waiting["pool"]["running_slots"] <= 8  # the two workers' 4 slots each, nothing on top
    # Both workers answer Celery's inspect, and neither executes a waiting approval's task instance.
    assert len(waiting["celery_workers"]) == 2
    assert waiting["held_by_waiting"] == []
