"""Aggregates over the store for the incident pages and the metrics.

The Prometheus counters and histograms are read from the running totals (include/store/totals.py);
the gauges and the pages' counts are grouped queries on indexed columns. `recount_totals` computes
every total from the rows in SQL, one grouped query each.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.incident_stats import (
    DURATION_BUCKETS,
    LATENCY_BUCKETS,
    Histogram,
    WindowStats,
    empty_histogram,
    severity_label,
)
from include.store.base import Database, insert_once
from include.store.records import PENDING, utcnow
from include.store.schema import approvals, events, incidents, metric_totals, webhook_requests
from include.store.totals import (
    APPROVALS,
    COUNTED,
    COUNTER,
    INCIDENTS,
    MODEL_CALLS,
    TIME_TO_ACKNOWLEDGE,
    TIME_TO_RESOLVE,
    add_to_row,
    counter_totals,
    histogram_totals,
    labels_key,
)
from include.vocabulary import ACTIVE_INCIDENT_STATES, IncidentState, TimelineKind


class StatsRepository:
    """Counts and histograms over incidents, approvals, AI steps and webhook requests."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def count_once(self) -> None:
        """Count the totals from the rows the first time the store is opened (a store made before them)."""
        counted = sa.select(metric_totals.c.metric).where(metric_totals.c.metric == COUNTED)
        if self._rows(counted):
            return  # every start after the first: no lock taken
        with self.db.tx() as conn:
            # The table lock comes first, so concurrent first starters queue here (taken after the
            # marker's insert, two of them deadlocked); the first counts, the others find its row.
            self._lock_totals(conn)
            if insert_once(
                conn, metric_totals, metric=COUNTED, labels="[]", bucket=COUNTER, count=0, total=0.0
            ):
                self._recount(conn)

    def recount_totals(self) -> None:
        """Compute every running total from the rows again (after rows were changed by hand)."""
        with self.db.tx() as conn:
            self._recount(conn)

    @staticmethod
    def _lock_totals(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Writers raise totals as their last statement: they wait, and raise the new totals after.
            # (SQLite has one writer at a time anyway.)
            conn.execute(sa.text(f"LOCK TABLE {metric_totals.name} IN EXCLUSIVE MODE"))

    def _recount(self, conn: Connection) -> None:
        self._lock_totals(conn)
        conn.execute(metric_totals.delete().where(metric_totals.c.metric != COUNTED))
        rows = []
        for (severity, source), count in self._count_incidents(conn).items():
            rows.append(self._total_row(INCIDENTS, (severity, source), COUNTER, count, 0.0))
        for state, count in self._count_approval_outcomes(conn).items():
            rows.append(self._total_row(APPROVALS, (state,), COUNTER, count, 0.0))
        for metric, found in (
            (TIME_TO_ACKNOWLEDGE, self._count_durations(conn, incidents.c.acknowledged_at)),
            (TIME_TO_RESOLVE, self._count_durations(conn, incidents.c.resolved_at)),
            (MODEL_CALLS, self._count_model_calls(conn)),
        ):
            for labels, bucket, count, total in found:
                rows.append(self._total_row(metric, labels, bucket, count, total))
        if rows:
            conn.execute(metric_totals.insert(), rows)

    @staticmethod
    def _total_row(
        metric: str, labels: tuple[Any, ...], bucket: int, count: int, total: float
    ) -> dict[str, Any]:
        return {
            "metric": metric,
            "labels": labels_key([str(v) for v in labels]),
            "bucket": bucket,
            "count": count,
            "total": total,
        }

    # -- SQL helpers -----------------------------------------------------------------------------

    def _seconds(self, end: ColumnElement[Any], start: ColumnElement[Any]) -> ColumnElement[Any]:
        """Return the SQL for the seconds from `start` to `end` in this store's dialect."""
        if self.db.dialect == "postgresql":
            return sa.func.extract("epoch", end - start)
        # julianday is a float of days: round to the millisecond, so that 300 s is not 300.00000001.
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0, 3)

    def _histogram_rows(
        self,
        conn: Connection,
        value: ColumnElement[Any],
        bounds: tuple[float, ...],
        *where: Any,
        group_by: tuple[ColumnElement[Any], ...] = (),
    ) -> list[tuple[tuple[Any, ...], int, int, float]]:
        """Return (group, bucket, count, sum) of `value` (NULLs left out), from one query.

        Each row's value is computed once (a materialised CTE: date and JSON parsing is the cost),
        then the rows are counted per bucket (as `le`: a value on a bound is in its bucket).
        """
        observed = (
            sa.select(*(c.label(f"g{i}") for i, c in enumerate(group_by)), value.label("v"))
            .where(*where)
            .cte("observed")
            .prefix_with("MATERIALIZED")
        )
        v, groups = observed.c.v, [observed.c[f"g{i}"] for i in range(len(group_by))]
        bucket = sa.case(*((v <= bound, i) for i, bound in enumerate(bounds)), else_=len(bounds))
        query = (
            sa.select(*groups, bucket, sa.func.count(), sa.func.sum(v))
            .where(v.isnot(None))
            .group_by(*groups, bucket)
        )
        return [
            (tuple(row[: len(groups)]), int(row[-3]), int(row[-2]), float(row[-1] or 0.0))
            for row in self._rows(query, conn)
        ]

    def _rows(
        self, query: sa.Select[*tuple[Any, ...]], conn: Connection | None = None
    ) -> list[tuple[Any, ...]]:
        if conn is not None:
            return [tuple(row) for row in conn.execute(query)]
        with self.db.read() as fresh:
            return [tuple(row) for row in fresh.execute(query)]

    # -- incidents -------------------------------------------------------------------------------

    def incident_totals(self) -> dict[tuple[str, str], int]:
        """Return how many incidents were opened, by (severity, source), each counted once diagnosed.

        An incident has no severity until the diagnosis: counting it under "unknown" first would make
        that series go down later, which Prometheus reads as a counter reset.
        """
        return {(severity, source): n for (severity, source), n in counter_totals(self.db, INCIDENTS).items()}

    def _count_incidents(self, conn: Connection) -> dict[tuple[str, str], int]:
        query = (
            sa.select(incidents.c.severity, incidents.c.source, sa.func.count())
            .where(incidents.c.analysis.isnot(None))
            .group_by(incidents.c.severity, incidents.c.source)
        )
        totals: dict[tuple[str, str], int] = {}
        for severity, source, count in self._rows(query, conn):
            key = (severity_label(severity), source)
            totals[key] = totals.get(key, 0) + int(count)
        return totals

    def open_incident_counts(self) -> dict[str, int]:
        """Return how many incidents are not resolved yet, by severity."""
        query = (
            sa.select(incidents.c.severity, sa.func.count())
            .where(incidents.c.state.in_([str(s) for s in ACTIVE_INCIDENT_STATES]))
            .group_by(incidents.c.severity)
        )
        counts: dict[str, int] = {}
        for severity, count in self._rows(query):
            counts[severity_label(severity)] = counts.get(severity_label(severity), 0) + int(count)
        return counts

    def incident_dag_ids(self) -> set[str]:
        """Return the DAG ids that have incidents (to ask the auth manager which the caller may read)."""
        return {dag_id for (dag_id,) in self._rows(sa.select(incidents.c.dag_id).distinct())}

    def state_counts(self, *, dag_ids: set[str] | None = None) -> dict[str, int]:
        """Return how many incidents are in each state (of the given DAGs only, when given)."""
        query = sa.select(incidents.c.state, sa.func.count()).group_by(incidents.c.state)
        if dag_ids is not None:
            query = query.where(incidents.c.dag_id.in_(sorted(dag_ids)))
        counts = {str(state): 0 for state in IncidentState}
        counts.update({state: int(count) for state, count in self._rows(query)})
        return counts

    def time_to_acknowledge(self) -> Histogram:
        """Return the histogram of seconds from arrival to acknowledgement, over all incidents."""
        found = histogram_totals(self.db, TIME_TO_ACKNOWLEDGE, DURATION_BUCKETS)
        return found.get((), empty_histogram(DURATION_BUCKETS))

    def time_to_resolve(self) -> Histogram:
        """Return the histogram of seconds from arrival to resolution, over all incidents."""
        found = histogram_totals(self.db, TIME_TO_RESOLVE, DURATION_BUCKETS)
        return found.get((), empty_histogram(DURATION_BUCKETS))

    def _count_durations(
        self, conn: Connection, end: sa.Column[Any]
    ) -> list[tuple[tuple[Any, ...], int, int, float]]:
        value = self._seconds(end, incidents.c.created_at)
        return self._histogram_rows(conn, value, DURATION_BUCKETS, end.isnot(None))

    def window_stats(self, label: str, since: datetime, *, dag_ids: set[str] | None = None) -> WindowStats:
        """Return the incidents opened since `since` with their MTTA and MTTR (means, in seconds)."""
        ack = self._seconds(incidents.c.acknowledged_at, incidents.c.created_at)
        res = self._seconds(incidents.c.resolved_at, incidents.c.created_at)
        query = sa.select(
            sa.func.count(),
            sa.func.count(incidents.c.acknowledged_at),
            sa.func.count(incidents.c.resolved_at),
            sa.func.avg(ack),
            sa.func.avg(res),
        ).where(incidents.c.created_at >= since)
        if dag_ids is not None:
            query = query.where(incidents.c.dag_id.in_(sorted(dag_ids)))
        opened, acknowledged, resolved, mtta, mttr = self._rows(query)[0]
        return WindowStats(
            label=label,
            opened=int(opened),
            acknowledged=int(acknowledged),
            resolved=int(resolved),
            mtta_seconds=float(mtta) if mtta is not None else None,
            mttr_seconds=float(mttr) if mttr is not None else None,
        )

    def daily_counts(
        self, since: datetime, *, dag_ids: set[str] | None = None
    ) -> list[tuple[str, str | None, int]]:
        """Return (ISO day, severity, count) of the incidents opened since `since`."""
        day = sa.func.date(incidents.c.created_at)
        query = (
            sa.select(day, incidents.c.severity, sa.func.count())
            .where(incidents.c.created_at >= since)
            .group_by(day, incidents.c.severity)
        )
        if dag_ids is not None:
            query = query.where(incidents.c.dag_id.in_(sorted(dag_ids)))
        return [(str(d), severity, int(count)) for d, severity, count in self._rows(query)]

    # -- approvals -------------------------------------------------------------------------------

    def pending_approval_counts(self, *, now: datetime | None = None) -> tuple[int, int]:
        """Return (pending approvals, those of them past their deadline)."""
        now = now or utcnow()
        query = sa.select(
            sa.func.count(), sa.func.sum(sa.case((approvals.c.expires_at < now, 1), else_=0))
        ).where(approvals.c.state == str(PENDING))
        pending, overdue = self._rows(query)[0]
        return int(pending), int(overdue or 0)

    def approval_outcomes(self) -> dict[str, int]:
        """Return how many approval requests ended in each decided state."""
        return {state: n for (state,), n in counter_totals(self.db, APPROVALS).items()}

    def _count_approval_outcomes(self, conn: Connection) -> dict[str, int]:
        query = (
            sa.select(approvals.c.state, sa.func.count())
            .where(approvals.c.state != str(PENDING))
            .group_by(approvals.c.state)
        )
        return {state: int(count) for state, count in self._rows(query, conn)}

    # -- AI steps --------------------------------------------------------------------------------

    def _llm_calls(self) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
        """Return the step, analyser and latency (ms) of the AI step entries, each entry parsed once.

        Parsing the JSON is what costs: one pass over the entries pulls the three fields together.
        """
        where = events.c.kind == TimelineKind.LLM_CALL
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            parsed = sa.select(sa.cast(events.c.detail, JSONB).label("d")).where(where)
            calls = parsed.cte("llm_calls").prefix_with("MATERIALIZED")
            detail = calls.c.d
            return (
                detail["step"].astext,
                detail["analyzer"].astext,
                detail["latency_ms"].astext.cast(sa.Float),
            )
        packed = sa.func.json_extract(events.c.detail, "$.step", "$.analyzer", "$.latency_ms")
        calls = sa.select(packed.label("a")).where(where).cte("llm_calls").prefix_with("MATERIALIZED")
        step, analyzer, latency_ms = (sa.func.json_extract(calls.c.a, f"$[{i}]") for i in range(3))
        return step, analyzer, latency_ms

    def model_calls(self) -> dict[tuple[str, str], Histogram]:
        """Return the AI steps that asked the model with their latency in seconds, by (step, outcome).

        The outcome is ``answered`` when the model's answer was used, ``fallback`` when the rules answered.
        """
        found = histogram_totals(self.db, MODEL_CALLS, LATENCY_BUCKETS)
        return {(step, outcome): histogram for (step, outcome), histogram in found.items()}

    def _count_model_calls(self, conn: Connection) -> list[tuple[tuple[Any, ...], int, int, float]]:
        step, analyzer, latency_ms = self._llm_calls()
        step = sa.func.coalesce(step, "unknown")
        outcome = sa.case((analyzer == "llm", "answered"), else_="fallback")
        latency = sa.func.coalesce(latency_ms, 0) / 1000.0
        return self._histogram_rows(conn, latency, LATENCY_BUCKETS, group_by=(step, outcome))

    # -- webhook requests ------------------------------------------------------------------------

    def count_webhook_request(self, source: str, status: int | str) -> None:
        """Add one to the requests answered for `source` with HTTP `status`."""
        self.count_webhook_requests({(source, str(status)): 1})

    def count_webhook_requests(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add counts of answered requests, by (source, HTTP status), in one transaction."""
        now = utcnow()
        with self.db.tx() as conn:
            for (source, status), count in sorted(counts.items()):  # one order: no deadlock
                key = {"source": source, "status": str(status)}
                add_to_row(conn, webhook_requests, key, {"count": count}, updated_at=now)

    def webhook_request_counts(self) -> dict[tuple[str, str], int]:
        """Return the webhook requests answered, by (source, status)."""
        query = sa.select(webhook_requests.c.source, webhook_requests.c.status, webhook_requests.c.count)
        return {(source, status): int(count) for source, status, count in self._rows(query)}
