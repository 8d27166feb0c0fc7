"""Many approvals waiting at once in one triggerer-like process: the real ApprovalTrigger, PostgreSQL store.

    .venv/bin/python bench/waiting_approvals.py --store-url postgresql+psycopg2://... [--count 1000]
        [--mode shared|per-trigger] [--wait 10]

Run as a child of bench_scale_out.py, so its CPU and memory are its own. It creates `--count` pending
approval records, then waits on all of them in one asyncio loop, as the triggerer's runner does:
`shared` runs ApprovalTrigger (one shared poll per store), `per-trigger` replays what each trigger
did before (its own read of its record every 0.25 s) for comparison. After `--wait` seconds it
approves every record through the store (one vote each) and times until every trigger has fired.
Prints one JSON object: CPU seconds and RSS of this process while waiting, store transactions per
second (pg_stat_database.xact_commit of the store's database, our own reads of it excluded), and
the seconds from the bulk approval until every trigger fired.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

POLL_INTERVAL = 0.25
STATEMENTS = [0]  # SQL statements this process sent to any database


def count_statements() -> None:
    """Count every statement any engine of this process executes."""
    import sqlalchemy as sa

    def seen(*_: Any) -> None:
        STATEMENTS[0] += 1

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)


def cpu_seconds() -> float:
    """Return this process's user + system CPU seconds, from /proc."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib() -> float:
    """Return this process's resident memory in MiB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def commits(store: Any) -> int:
    """Return the committed transactions of the store's database so far."""
    with store.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).scalar()
        )


def create_records(store: Any, count: int) -> list[str]:
    """Create `count` pending approval records, as request_approval does; return their ids."""
    from include.names import DAG_ID

    ids = []
    for n in range(count):
        run_id = f"bench-wait-{uuid.uuid4().hex[:8]}-{n}"
        incident_id = store.incidents.open(
            dag_id=DAG_ID,
            run_id=run_id,
            incident_key=uuid.uuid4().hex[:16],
            alert={"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api"},
        )
        record = store.approvals.create(
            incident_id=incident_id,
            dag_id=DAG_ID,
            run_id=run_id,
            action="isolate_pump",
            risk="high",
            reasons=["bench"],
            quorum=1,
            approvers=None,
            deadline=timedelta(hours=1),
        )
        ids.append(record.id)
    return ids


async def per_trigger_wait(store: Any, approval_id: str) -> str:
    """Wait as each trigger did before the shared poll: its own read every 0.25 s."""
    while True:
        state = await asyncio.to_thread(store.approvals.state, approval_id)
        if state.decided:
            return str(state)
        await asyncio.sleep(POLL_INTERVAL)


async def shared_wait(approval_id: str, expires_at: str) -> str:
    """Wait with the real ApprovalTrigger; return the state its first event carries."""
    from incident_ops.triggers.approval import ApprovalTrigger

    trigger = ApprovalTrigger(approval_id=approval_id, expires_at=expires_at, poll_interval=POLL_INTERVAL)
    async for event in trigger.run():
        return str(event.xcoms["return_value"]["state"]) if hasattr(event, "xcoms") else str(event.payload)
    return "none"


async def measure(store: Any, ids: list[str], mode: str, wait: float) -> dict[str, Any]:
    """Wait on every record, sample the cost of waiting, approve them all, time until all fired."""
    expires = {i: store.approvals.get(i).expires_at.isoformat() for i in ids}
    tasks = [
        asyncio.create_task(
            per_trigger_wait(store, i) if mode == "per-trigger" else shared_wait(i, expires[i])
        )
        for i in ids
    ]
    # Let every waiter start, and PostgreSQL publish the statistics of the records' creation.
    await asyncio.sleep(12.0)
    commits0 = await asyncio.to_thread(commits, store)
    cpu0, statements0, t0 = cpu_seconds(), STATEMENTS[0], time.monotonic()
    await asyncio.sleep(wait)
    cpu1, statements1, t1 = cpu_seconds(), STATEMENTS[0], time.monotonic()
    await asyncio.sleep(12.0)  # the statistics of the window, published
    commits1 = await asyncio.to_thread(commits, store)
    cpu_while_waiting = 100 * (cpu1 - cpu0) / (t1 - t0)
    rss = rss_mib()
    approved_at = time.monotonic()

    def approve_all() -> None:
        for approval_id in ids:
            store.approvals.cast_vote(
                approval_id, identity="admin", channel="web", decision="approve", role="admin"
            )

    await asyncio.to_thread(approve_all)
    written = time.monotonic() - approved_at
    states = await asyncio.gather(*tasks)
    fired = time.monotonic() - approved_at
    return {
        "mode": mode,
        "waiting": len(ids),
        "cpu_percent_while_waiting": round(cpu_while_waiting, 1),
        "rss_mib": round(rss, 1),
        "store_queries_per_second": round((statements1 - statements0) / (t1 - t0), 1),
        # Over the window and the settling time after it (our own commits() read included).
        "store_commits_per_second": round((commits1 - commits0) / (t1 - t0 + 12.0), 1),
        "approval_writes_seconds": round(written, 1),
        "approval_to_all_fired_seconds": round(fired, 1),
        "last_write_to_all_fired_seconds": round(fired - written, 2),
        "all_approved": set(states) == {"approved"},
    }


def main() -> int:
    """Parse the arguments, run one measurement, print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--mode", choices=("shared", "per-trigger"), default="shared")
    parser.add_argument("--wait", type=float, default=10.0)
    args = parser.parse_args()
    from incident_ops.triggers.approval import ApprovalTrigger  # noqa: F401  (same imports either mode)
    from include.store import IncidentStore

    count_statements()
    store = IncidentStore.from_url(args.store_url)
    # The trigger finds the store through the incident_store connection, as in the triggerer.
    os.environ["AIRFLOW_CONN_INCIDENT_STORE"] = json.dumps(
        {"conn_type": "postgres", **_conn_parts(args.store_url)}
    )
    ids = create_records(store, args.count)
    print(json.dumps(asyncio.run(measure(store, ids, args.mode, args.wait))))
    return 0


def _conn_parts(url: str) -> dict[str, Any]:
    """Return an Airflow connection's fields for a SQLAlchemy PostgreSQL URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
    }


if __name__ == "__main__":
    sys.exit(main())
