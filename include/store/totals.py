"""Running totals behind the Prometheus counters and histograms, raised where the facts are written.

A scrape reads a few dozen rows of ``ir_metric_totals`` instead of scanning every incident and timeline
entry: its cost stays flat at 100,000 incidents. Each total is raised in the transaction that records
what it counts (an incident diagnosed, acknowledged or resolved, an AI step, an approval decided), and
as its last statement, so a total and its fact commit together and no transaction holds a total's row
while it waits for anything else.

``StatsRepository.recount_totals`` rebuilds every total from the rows (a store made by an older release
gets its totals that way when it is first opened).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from include.incident_stats import Histogram, histogram_of
from include.store.base import Database
from include.store.schema import metric_totals

# Metric names in ir_metric_totals (the Prometheus names add the incident_response_ prefix).
INCIDENTS = "incidents"
TIME_TO_ACKNOWLEDGE = "time_to_acknowledge"
TIME_TO_RESOLVE = "time_to_resolve"
MODEL_CALLS = "model_calls"
APPROVALS = "approvals"
# The row that says the totals were counted from the rows once (see StatsRepository.count_once).
COUNTED = "_counted"
COUNTER = -1  # the bucket of a plain counter; histogram buckets are 0..len(bounds)


def labels_key(labels: Sequence[str]) -> str:
    """Return the stored form of a series' label values."""
    return json.dumps(list(labels))


def bucket_of(bounds: tuple[float, ...], value: float) -> int:
    """Return the index of the first bound `value` is at or under (len(bounds): past the last), as `le`."""
    return bisect_left(bounds, value)


def add_to_row(
    conn: Connection, table: sa.Table, key: dict[str, Any], add: dict[str, Any], **also: Any
) -> None:
    """Insert the row at `key` with the values of `add`, or add them to the row there (one statement)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(**key, **add, **also)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={**{name: table.c[name] + value for name, value in add.items()}, **also},
    )
    conn.execute(statement)


def count(conn: Connection, metric: str, labels: Sequence[str], by: int = 1) -> None:
    """Add `by` to a counter series, in `conn`'s transaction."""
    key = {"metric": metric, "labels": labels_key(labels), "bucket": COUNTER}
    add_to_row(conn, metric_totals, key, {"count": by, "total": 0.0})


def observe(
    conn: Connection, metric: str, labels: Sequence[str], bounds: tuple[float, ...], value: float
) -> None:
    """Count one observation of `value` in its bucket of a histogram series, in `conn`'s transaction."""
    key = {"metric": metric, "labels": labels_key(labels), "bucket": bucket_of(bounds, value)}
    add_to_row(conn, metric_totals, key, {"count": 1, "total": float(value)})


def series(db: Database, metric: str) -> dict[tuple[str, ...], dict[int, tuple[int, float]]]:
    """Return {label values: {bucket: (count, total)}} of one metric."""
    query = sa.select(
        metric_totals.c.labels, metric_totals.c.bucket, metric_totals.c.count, metric_totals.c.total
    ).where(metric_totals.c.metric == metric)
    found: dict[tuple[str, ...], dict[int, tuple[int, float]]] = {}
    for row in db.rows(query):
        found.setdefault(tuple(json.loads(row.labels)), {})[int(row.bucket)] = (
            int(row.count),
            float(row.total),
        )
    return found


def counter_totals(db: Database, metric: str) -> dict[tuple[str, ...], int]:
    """Return each series of a counter with its count."""
    return {labels: buckets[COUNTER][0] for labels, buckets in series(db, metric).items()}


def histogram_totals(
    db: Database, metric: str, bounds: tuple[float, ...]
) -> dict[tuple[str, ...], Histogram]:
    """Return each series of a histogram."""
    result = {}
    for labels, buckets in series(db, metric).items():
        per_bucket = [buckets.get(i, (0, 0.0))[0] for i in range(len(bounds) + 1)]
        total = sum(value for _, value in buckets.values())
        result[labels] = histogram_of(bounds, per_bucket, total)
    return result
