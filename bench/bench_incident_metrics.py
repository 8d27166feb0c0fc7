"""Benchmark a Prometheus scrape and the incident pages on a store with many incidents.

    .venv/bin/python bench/bench_incident_metrics.py [--incidents 100000] [--repeat 5]

Fills a throw-away SQLite store, then a throw-away PostgreSQL database on 127.0.0.1:5432 (skipped
when none answers), each with `--incidents` incidents spread over 30 days: three timeline entries
each (opened, an AI step with its latency, resolved or not), acknowledgement and resolution times for
most, an approval request for one in ten, and webhook request counts. Then times, `--repeat` times each:

- a scrape: the whole exposition (include.metrics.exposition), as GET /incident-response/metrics
  answers it after the token check;
- the incident list's data and HTML (what GET /incident-response/incidents renders);
- one incident's page (GET /incident-response/incidents/{id}), for an incident with 40 timeline entries.

Prints the median and the slowest run of each, in milliseconds, and writes
bench/results/incident_metrics.json. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins"), str(REPO / "bench")]

from common import write_result  # noqa: E402

from include.store import IncidentStore, incident_id_for  # noqa: E402
from include.store.schema import approvals, events, incidents  # noqa: E402

DAG_ID = "incident_response"
SEVERITIES = ("critical", "warning", "info")
SOURCES = ("alertmanager", "grafana", "pagerduty", "api")
BATCH = 5000


def fill(store: IncidentStore, count: int, *, seed: int = 7) -> str:
    """Write `count` incidents with their timeline entries and approvals; return one busy incident's id."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows, entries, records = [], [], []

    def flush() -> None:
        with store.engine.begin() as conn:
            if rows:
                conn.execute(incidents.insert(), rows)
            if entries:
                conn.execute(events.insert(), entries)
            if records:
                conn.execute(approvals.insert(), records)
        rows.clear(), entries.clear(), records.clear()

    for n in range(count):
        run_id = f"bench__{n}"
        incident_id = incident_id_for(DAG_ID, run_id)
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        acked = created + timedelta(seconds=rng.expovariate(1 / 300)) if rng.random() < 0.9 else None
        resolved = created + timedelta(seconds=rng.expovariate(1 / 1800)) if rng.random() < 0.95 else None
        rows.append(
            {
                "id": incident_id,
                "incident_key": f"k{n}",
                "dag_id": DAG_ID,
                "run_id": run_id,
                "device_id": f"PUMP-{n % 500:03d}",
                "error": "PRESSURE_SPIKE_DETECTED",
                "source": rng.choice(SOURCES),
                "state": "resolved" if resolved else ("acknowledged" if acked else "open"),
                "severity": (severity := rng.choice(SEVERITIES)),
                "alert": {"device_id": f"PUMP-{n % 500:03d}", "error": "PRESSURE_SPIKE_DETECTED"},
                "analysis": {"severity": severity, "root_cause": "pressure spike"},
                "outcome": "fixed" if resolved else None,
                "created_at": created,
                "acknowledged_at": acked,
                "acknowledged_by": "alice" if acked else None,
                "resolved_at": resolved,
            }
        )
        entries.append({"incident_id": incident_id, "at": created, "kind": "opened", "detail": {}})
        latency = int(rng.lognormvariate(7.5, 0.6))
        entries.append(
            {
                "incident_id": incident_id,
                "at": created + timedelta(milliseconds=latency),
                "kind": "llm_call",
                "detail": {
                    "step": "diagnose",
                    "analyzer": "llm" if rng.random() < 0.9 else "rules",
                    "latency_ms": latency,
                },
            }
        )
        if resolved:
            entries.append(
                {
                    "incident_id": incident_id,
                    "at": resolved,
                    "kind": "resolved",
                    "detail": {"outcome": "fixed"},
                }
            )
        if n % 10 == 0:
            records.append(
                {
                    "id": f"apr-bench-{n}",
                    "incident_id": incident_id,
                    "dag_id": DAG_ID,
                    "run_id": run_id,
                    "action": "restart_pump",
                    "risk": "high",
                    "reasons": [],
                    "quorum": 1,
                    "state": rng.choice(("approved", "rejected", "expired", "pending")),
                    "created_at": created,
                    "expires_at": created + timedelta(hours=1),
                    "forbid_self_approval": False,
                }
            )
        if len(rows) >= BATCH:
            flush()
    flush()
    for status, times in (("202", 500), ("401", 20), ("422", 5)):
        for _ in range(times):
            store.stats.count_webhook_request("alertmanager", status)
    busy = store.incidents.open(
        dag_id=DAG_ID, run_id="bench__busy", incident_key="busy", alert={"device_id": "PUMP-1", "error": "E"}
    )
    for i in range(40):
        store.incidents.add_event(
            busy,
            "llm_call" if i % 4 == 0 else "vote",
            {"step": "diagnose", "latency_ms": 900, "identity": "alice", "decision": "approve"},
        )
    store.incidents.resolve(busy, outcome="fixed")
    return busy


def timed(label: str, work, repeat: int) -> dict[str, float]:
    """Run `work` `repeat` times after one warm-up run; print and return the median and the slowest, in ms."""
    work()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started) * 1000)
    print(f"  {label:<42} median {statistics.median(runs):8.1f} ms   max {max(runs):8.1f} ms")
    return {"median_ms": round(statistics.median(runs), 2), "max_ms": round(max(runs), 2)}


@contextmanager
def postgres_store() -> Iterator[str | None]:
    """Yield the URL of a throw-away database on 127.0.0.1:5432 (None when no server answers)."""
    import psycopg2

    try:
        admin = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
    except psycopg2.OperationalError as exc:
        print(f"postgresql: skipped, no server on 127.0.0.1:5432 ({exc})")
        yield None
        return
    admin.autocommit = True
    name = f"bench_metrics_{os.getpid()}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def measure(url: str, incidents: int, repeat: int) -> dict[str, object]:
    """Fill the store at `url`, then time the scrape and the pages on it."""
    from incident_ops.api import incident_views, rendering
    from include.metrics import exposition

    store = IncidentStore.from_url(url)
    started = time.perf_counter()
    busy = fill(store, incidents)
    print(
        f"{store.engine.dialect.name}: {incidents} incidents written in {time.perf_counter() - started:.1f} s"
    )
    # The rows went straight into the tables, as an older release wrote them: count the running
    # totals from them, as opening such a store does, then let the database plan with fresh statistics
    # (as PostgreSQL's autovacuum does after a bulk write).
    started = time.perf_counter()
    store.stats.recount_totals()
    recount_s = time.perf_counter() - started
    print(f"  running totals counted from the rows in {recount_s:.1f} s")
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    dag_ids = {DAG_ID}

    def list_page() -> None:
        context = incident_views.list_context(store, dag_ids=dag_ids, state=None, severity=None)
        rendering.render(
            "incidents.html",
            **context,
            username="bench",
            prefix="",
            states=(),
            severities=(),
            state=None,
            severity=None,
        )

    def incident_page() -> None:
        context = incident_views.incident_context(store, busy)
        rendering.render(
            "incident.html", **context, username="bench", prefix="", run_url="", postmortem_url=""
        )

    try:
        return {
            "incidents": incidents,
            "exposition_bytes": len(exposition(store)),
            "recount_s": round(recount_s, 2),
            "scrape": timed("scrape (all incident_response_* metrics)", lambda: exposition(store), repeat),
            "list_page": timed("incident list page (data and HTML)", list_page, repeat),
            "incident_page": timed("incident page, 40 timeline entries", incident_page, repeat),
        }
    finally:
        store.engine.dispose()


def main() -> None:
    """Measure on a throw-away SQLite file and on a throw-away PostgreSQL database."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args.incidents, args.repeat)
    with postgres_store() as url:
        if url:
            results["postgresql"] = measure(url, args.incidents, args.repeat)
    write_result("incident_metrics", {"figures": results})


if __name__ == "__main__":
    main()
