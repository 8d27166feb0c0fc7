"""Incidents and their timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from include.incident_stats import DURATION_BUCKETS, LATENCY_BUCKETS, severity_label
from include.store.base import Database, add_entry, insert_once
from include.store.incident_records import Incident, TimelineEntry
from include.store.records import NotFound, aware, incident_id_for, utcnow
from include.store.schema import events, incidents
from include.store.totals import INCIDENTS, MODEL_CALLS, TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE, count, observe
from include.vocabulary import ACTIVE_INCIDENT_STATES, IncidentState, Source, TimelineKind

# The fields a task or a responder may set on an incident after it was opened.
UPDATABLE = frozenset({"severity", "analysis", "ticket_id", "slack_channel", "slack_ts", "outcome"})


def model_call_labels(detail: dict[str, Any]) -> tuple[str, str]:
    """Return (step, outcome) of an AI step entry: ``answered`` when the model's answer was used."""
    return str(detail.get("step") or "unknown"), "answered" if detail.get("analyzer") == "llm" else "fallback"


def model_call_seconds(detail: dict[str, Any]) -> float:
    """Return an AI step entry's latency in seconds (0 when it has none)."""
    try:
        return max(0.0, float(detail.get("latency_ms") or 0) / 1000.0)
    except (TypeError, ValueError):
        return 0.0


class IncidentRepository:
    """Incidents (`open → acknowledged → resolved`) and their timeline."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing ---------------------------------------------------------------------------------

    def open(self, *, dag_id: str, run_id: str, incident_key: str, alert: dict[str, Any]) -> str:
        """Create the run's incident if it does not exist yet; return its id."""
        incident_id = incident_id_for(dag_id, run_id)
        with self.db.tx() as conn:
            self.open_in(
                conn,
                incident_id=incident_id,
                dag_id=dag_id,
                run_id=run_id,
                incident_key=incident_key,
                alert=alert,
            )
        return incident_id

    @staticmethod
    def open_in(
        conn: Connection,
        *,
        incident_id: str,
        dag_id: str,
        run_id: str,
        incident_key: str,
        alert: dict[str, Any],
    ) -> bool:
        """Insert an open incident and its "opened" timeline entry in `conn`'s transaction, unless the
        incident exists; True when it was inserted."""
        inserted = insert_once(
            conn,
            incidents,
            id=incident_id,
            incident_key=incident_key,
            dag_id=dag_id,
            run_id=run_id,
            device_id=alert["device_id"],
            error=alert["error"],
            source=alert.get("source") or Source.API,
            state=IncidentState.OPEN,
            severity=alert.get("severity"),
            alert=alert,
            created_at=utcnow(),
        )
        if inserted:
            opened = {"device_id": alert["device_id"], "error": alert["error"]}
            add_entry(conn, incident_id, TimelineKind.OPENED, opened)
        return inserted

    def update(self, incident_id: str, **values: Any) -> None:
        """Set fields of an incident (severity, analysis, ticket, Slack thread, outcome)."""
        if set(values) - UPDATABLE:
            raise ValueError(f"cannot update {sorted(set(values) - UPDATABLE)}")
        with self.db.tx() as conn:
            if "analysis" in values:
                # The first diagnosis counts the incident, under the severity it found: counted
                # earlier, a series would go down when the diagnosis changes the alert's severity.
                first = conn.execute(
                    incidents.update()
                    .where(incidents.c.id == incident_id, incidents.c.analysis.is_(None))
                    .values(**values)
                ).rowcount
                if first:
                    row = conn.execute(
                        sa.select(incidents.c.severity, incidents.c.source).where(
                            incidents.c.id == incident_id
                        )
                    ).one()
                    count(conn, INCIDENTS, (severity_label(row.severity), row.source))
                    return
            conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))

    def set_thread(self, incident_id: str, *, channel: str, ts: str) -> tuple[str, str]:
        """Make (channel, ts) the incident's Slack thread unless it has one; return the thread."""
        with self.db.tx() as conn:
            conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id, incidents.c.slack_ts.is_(None))
                .values(slack_channel=channel, slack_ts=ts)
            )
            row = conn.execute(
                sa.select(incidents.c.slack_channel, incidents.c.slack_ts).where(
                    incidents.c.id == incident_id
                )
            ).one()
        return row.slack_channel, row.slack_ts

    def acknowledge(self, incident_id: str, *, by: str) -> bool:
        """Record that a responder acknowledged an open incident; False when it was not open."""
        with self.db.tx() as conn:
            return self.acknowledge_in(conn, incident_id, by=by, now=utcnow())

    @staticmethod
    def acknowledge_in(
        conn: Connection, incident_id: str, *, by: str, now: datetime, via: str | None = None
    ) -> bool:
        """Move an open incident to acknowledged in `conn`'s transaction; False when it was not open."""
        done = conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.state == IncidentState.OPEN)
            .values(state=IncidentState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)
        ).rowcount
        if done:
            add_entry(
                conn, incident_id, TimelineKind.ACKNOWLEDGED, {"by": by, **({"via": via} if via else {})}
            )
            _observe_since_opened(conn, incident_id, TIME_TO_ACKNOWLEDGE, now)
        return bool(done)

    def resolve(self, incident_id: str, *, outcome: str, by: str | None = None) -> bool:
        """Mark the incident resolved with its outcome (and who, when a person did); the first call wins."""
        now = utcnow()
        with self.db.tx() as conn:
            done = conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id, incidents.c.state.in_(ACTIVE_INCIDENT_STATES))
                .values(state=IncidentState.RESOLVED, outcome=str(outcome), resolved_at=now, resolved_by=by)
            ).rowcount
            if done:
                add_entry(conn, incident_id, TimelineKind.RESOLVED, {"outcome": str(outcome), "by": by})
                _observe_since_opened(conn, incident_id, TIME_TO_RESOLVE, now)
        return bool(done)

    # -- timeline --------------------------------------------------------------------------------

    def add_event(self, incident_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Append an entry to the incident's timeline."""
        detail = detail or {}
        with self.db.tx() as conn:
            add_entry(conn, incident_id, kind, detail)
            if kind == TimelineKind.LLM_CALL:
                seconds = model_call_seconds(detail)
                observe(conn, MODEL_CALLS, model_call_labels(detail), LATENCY_BUCKETS, seconds)

    def add_event_unless(
        self,
        incident_id: str,
        kind: str,
        detail: dict[str, Any],
        *,
        full: Callable[[list[TimelineEntry]], bool],
    ) -> bool:
        """Append an entry unless `full`, given the incident's entries of `kind`, says there are enough.

        Read and written under the incident's lock, so concurrent callers never pass the cap together;
        True when the entry was kept.
        """
        with self.db.tx() as conn:
            # Writing first takes the row lock on PostgreSQL and the write lock on SQLite.
            touched = conn.execute(
                incidents.update().where(incidents.c.id == incident_id).values(state=incidents.c.state)
            ).rowcount
            if not touched:
                raise NotFound(incident_id)
            query = (
                sa.select(events)
                .where(events.c.incident_id == incident_id, events.c.kind == str(kind))
                .order_by(events.c.id)
            )
            if full([TimelineEntry.from_row(row) for row in conn.execute(query).mappings()]):
                return False
            add_entry(conn, incident_id, kind, detail)
        return True

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """Return the incident's timeline, oldest first."""
        return [TimelineEntry.from_row(row) for row in self.db.incident_rows(events, incident_id)]

    # -- reading ---------------------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident:
        """Return the incident (raises NotFound)."""
        rows = self.db.rows(sa.select(incidents).where(incidents.c.id == incident_id))
        if not rows:
            raise NotFound(f"no incident {incident_id}")
        return Incident.from_row(rows[0])

    @staticmethod
    def exists_in(conn: Connection, incident_id: str) -> bool:
        """Say whether the incident exists, read in `conn`'s transaction."""
        return (
            conn.execute(sa.select(incidents.c.id).where(incidents.c.id == incident_id)).first() is not None
        )

    def ids(self, *, state: IncidentState | None = None, limit: int = 100) -> list[str]:
        """Return the ids of incidents (in `state`, if given), newest first."""
        query = sa.select(incidents.c.id).order_by(incidents.c.created_at.desc(), incidents.c.id).limit(limit)
        if state is not None:
            query = query.where(incidents.c.state == IncidentState(state))
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def find(
        self,
        *,
        states: Iterable[IncidentState | str] = (),
        severity: str | None = None,
        dag_ids: set[str] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Return the newest incidents in any of `states` (all when empty) and of `severity`, newest first."""
        query = sa.select(incidents)
        wanted = [str(IncidentState(state)) for state in states]
        if wanted:
            query = query.where(incidents.c.state.in_(wanted))
        if severity:
            query = query.where(incidents.c.severity == severity)
        if dag_ids is not None:
            query = query.where(incidents.c.dag_id.in_(sorted(dag_ids)))
        query = query.order_by(incidents.c.created_at.desc(), incidents.c.id).limit(limit)
        return [Incident.from_row(row) for row in self.db.rows(query)]


def _observe_since_opened(conn: Connection, incident_id: str, metric: str, now: datetime) -> None:
    opened: datetime = conn.execute(
        sa.select(incidents.c.created_at).where(incidents.c.id == incident_id)
    ).scalar_one()
    observe(conn, metric, (), DURATION_BUCKETS, (now - aware(opened)).total_seconds())
