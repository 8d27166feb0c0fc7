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
    severity_label,
)
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


class IncidentStats:
    """Counts, histograms and lists over incidents, approvals, AI steps and webhook requests."""

    engine: sa.engine.Engine

    # -- SQL helpers -----------------------------------------------------------------------------

    def _seconds(self, end: ColumnElement, start: ColumnElement) -> ColumnElement:
        """Return the SQL for the seconds from `start` to `end` in this store's dialect."""
        if self.engine.dialect.name == "postgresql":
            return sa.func.extract("epoch", end - start)
        # julianday is a float of days: round to the millisecond, so that 300 s is not 300.00000001.
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0, 3)

    def _histogram(
        self, value: ColumnElement, bounds: tuple[float, ...], *where: Any, group_by: tuple = ()
    ) -> dict[tuple, Histogram]:
        """Return a histogram of `value` (NULLs left out) per group, from one query."""
        observed = value.isnot(None)
        columns = [
            *group_by,
            *(sa.func.sum(sa.case((value <= bound, 1), else_=0)) for bound in bounds),
            sa.func.count(value),
            sa.func.coalesce(sa.func.sum(value), 0.0),
        ]
        query = sa.select(*columns).where(observed, *where)
        if group_by:
            query = query.group_by(*group_by)
        found: dict[tuple, Histogram] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                keys, rest = tuple(row[: len(group_by)]), row[len(group_by) :]
                found[keys] = Histogram(
                    bounds=bounds,
                    cumulative=tuple(int(c or 0) for c in rest[: len(bounds)]),
                    count=int(rest[len(bounds)] or 0),
                    total=float(rest[len(bounds) + 1] or 0.0),
                )
        return found

    def _rows(self, query: sa.Select) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    # -- incidents -------------------------------------------------------------------------------

    def incident_totals(self) -> dict[tuple[str, str], int]:
        """Return how many incidents were opened, by (severity, source)."""
        query = sa.select(incidents.c.severity, incidents.c.source, sa.func.count()).group_by(
            incidents.c.severity, incidents.c.source
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
        return self._histogram(value, DURATION_BUCKETS).get((), empty_histogram(DURATION_BUCKETS))

    def time_to_resolve(self) -> Histogram:
        """Return the histogram of seconds from arrival to resolution, over all incidents."""
        value = self._seconds(incidents.c.resolved_at, incidents.c.created_at)
        return self._histogram(value, DURATION_BUCKETS).get((), empty_histogram(DURATION_BUCKETS))

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

    def list_incidents(
        self,
        *,
        state: str | None = None,
        severity: str | None = None,
        dag_ids: set[str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Return the newest incidents, filtered by state and severity, newest first."""
        query = sa.select(*(incidents.c[name] for name in LIST_COLUMNS))
        if state:
            query = query.where(incidents.c.state == state)
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

    def _model_columns(self) -> tuple[ColumnElement, ColumnElement, ColumnElement]:
        step = sa.func.coalesce(events.c.detail["step"].as_string(), "unknown")
        # A step "answered" when the model's answer was used; anything else fell back to the rules.
        outcome = sa.case((events.c.detail["analyzer"].as_string() == "llm", "answered"), else_="fallback")
        latency = events.c.detail["latency_ms"].as_float() / 1000.0
        return step, outcome, latency

    def model_call_counts(self) -> dict[tuple[str, str], int]:
        """Return how many AI steps asked the model, by (step, outcome: answered or fallback)."""
        step, outcome, _ = self._model_columns()
        query = (
            sa.select(step, outcome, sa.func.count()).where(events.c.kind == LLM_CALL).group_by(step, outcome)
        )
        return {(s, o): int(count) for s, o, count in self._rows(query)}

    def model_latency(self) -> dict[str, Histogram]:
        """Return the histogram of AI step latencies in seconds, by step."""
        step, _, latency = self._model_columns()
        found = self._histogram(latency, LATENCY_BUCKETS, events.c.kind == LLM_CALL, group_by=(step,))
        return {keys[0]: histogram for keys, histogram in found.items()}

    # -- webhook requests ------------------------------------------------------------------------

    def count_webhook_request(self, source: str, status: int | str) -> None:
        """Add one to the requests answered for `source` with HTTP `status`."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
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
