"""Aggregates over the store for the incident list and the metrics, computed in SQL.

A Prometheus scrape reads these every 15 to 60 s from every api-server process: each is one grouped
query, so its cost does not depend on how many rows come back, only on one pass over the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from include.incident_stats import (
    DURATION_BUCKETS,
    LATENCY_BUCKETS,
    Histogram,
    WindowStats,
    empty_histogram,
    histogram_of,
    severity_label,
)
from include.store.base import StoreBase
from include.store.records import ACTIVE_INCIDENT_STATES, PENDING, IncidentState, aware, utcnow
from include.store.schema import approvals, events, incidents, webhook_requests

LLM_CALL = "llm_call"
LIST_COLUMNS = (
    "id",
    "dag_id",
    "run_id",
    "device_id",
    "error",
    "source",
    "state",
    "severity",
    "outcome",
    "created_at",
    "acknowledged_at",
    "resolved_at",
)


class IncidentStats(StoreBase):
    """Counts, histograms and lists over incidents, approvals, AI steps and webhook requests."""

    engine: sa.engine.Engine

    # -- SQL helpers -----------------------------------------------------------------------------

    def _seconds(self, end: ColumnElement[Any], start: ColumnElement[Any]) -> ColumnElement[Any]:
        """Return the SQL for the seconds from `start` to `end` in this store's dialect."""
        if self.engine.dialect.name == "postgresql":
            return sa.func.extract("epoch", end - start)
        # julianday is a float of days: round to the millisecond, so that 300 s is not 300.00000001.
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0, 3)

    def _histogram(
        self,
        value: ColumnElement[Any],
        bounds: tuple[float, ...],
        *where: Any,
        group_by: tuple[ColumnElement[Any], ...] = (),
    ) -> dict[tuple[Any, ...], Histogram]:
        """Return a histogram of `value` (NULLs left out) per group, from one query.

        Each row's value is computed once (a materialised CTE: date and JSON parsing is the cost),
        then the rows are counted per bucket.
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
        counts: dict[tuple[Any, ...], list[int]] = {}
        totals: dict[tuple[Any, ...], float] = {}
        for row in self._rows(query):
            keys, (index, count, total) = tuple(row[: len(groups)]), row[len(groups) :]
            counts.setdefault(keys, [0] * (len(bounds) + 1))[int(index)] += int(count)
            totals[keys] = totals.get(keys, 0.0) + float(total or 0.0)
        return {keys: histogram_of(bounds, per_bucket, totals[keys]) for keys, per_bucket in counts.items()}

    def _rows(self, query: sa.Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    # -- incidents -------------------------------------------------------------------------------

    def incident_totals(self) -> dict[tuple[str, str], int]:
        """Return how many incidents were opened, by (severity, source), counting each once diagnosed.

        An incident has no severity until the diagnosis: counting it under "unknown" first would make
        that series go down later, which Prometheus reads as a counter reset.
        """
        query = (
            sa.select(incidents.c.severity, incidents.c.source, sa.func.count())
            .where(incidents.c.severity.isnot(None))
            .group_by(incidents.c.severity, incidents.c.source)
        )
        totals: dict[tuple[str, str], int] = {}
        for severity, source, count in self._rows(query):
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
        value = self._seconds(incidents.c.acknowledged_at, incidents.c.created_at)
        found = self._histogram(value, DURATION_BUCKETS, incidents.c.acknowledged_at.isnot(None))
        return found.get((), empty_histogram(DURATION_BUCKETS))

    def time_to_resolve(self) -> Histogram:
        """Return the histogram of seconds from arrival to resolution, over all incidents."""
        value = self._seconds(incidents.c.resolved_at, incidents.c.created_at)
        found = self._histogram(value, DURATION_BUCKETS, incidents.c.resolved_at.isnot(None))
        return found.get((), empty_histogram(DURATION_BUCKETS))

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

    def list_incident_rows(
        self,
        *,
        states: tuple[str, ...] = (),
        severity: str | None = None,
        dag_ids: set[str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Return the newest incidents in any of `states` (all when empty) and of `severity`, newest first."""
        query = sa.select(*(incidents.c[name] for name in LIST_COLUMNS))
        if states:
            query = query.where(incidents.c.state.in_([str(state) for state in states]))
        if severity:
            query = query.where(incidents.c.severity == severity)
        if dag_ids is not None:
            query = query.where(incidents.c.dag_id.in_(sorted(dag_ids)))
        query = query.order_by(incidents.c.created_at.desc(), incidents.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            for key in ("created_at", "acknowledged_at", "resolved_at"):
                row[key] = aware(row[key])
        return rows

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
        query = (
            sa.select(approvals.c.state, sa.func.count())
            .where(approvals.c.state != str(PENDING))
            .group_by(approvals.c.state)
        )
        return {state: int(count) for state, count in self._rows(query)}

    # -- AI steps --------------------------------------------------------------------------------

    def _llm_calls(self) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
        """Return the step, analyser and latency (ms) of the AI step entries, each entry parsed once.

        Parsing the JSON is what costs: one pass over the entries pulls the three fields together.
        """
        where = events.c.kind == LLM_CALL
        if self.engine.dialect.name == "postgresql":
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
        step, analyzer, latency_ms = self._llm_calls()
        step = sa.func.coalesce(step, "unknown")
        outcome = sa.case((analyzer == "llm", "answered"), else_="fallback")
        latency = sa.func.coalesce(latency_ms, 0) / 1000.0
        found = self._histogram(latency, LATENCY_BUCKETS, group_by=(step, outcome))
        return {(s, o): histogram for (s, o), histogram in found.items()}

    # -- webhook requests ------------------------------------------------------------------------

    def count_webhook_request(self, source: str, status: int | str) -> None:
        """Add one to the requests answered for `source` with HTTP `status`."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        now = utcnow()
        statement = insert(webhook_requests).values(
            source=source, status=str(status), count=1, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[webhook_requests.c.source, webhook_requests.c.status],
            set_={"count": webhook_requests.c.count + 1, "updated_at": now},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def webhook_request_counts(self) -> dict[tuple[str, str], int]:
        """Return the webhook requests answered, by (source, status)."""
        query = sa.select(webhook_requests.c.source, webhook_requests.c.status, webhook_requests.c.count)
        return {(source, status): int(count) for source, status, count in self._rows(query)}
