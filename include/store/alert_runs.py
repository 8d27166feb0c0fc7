"""Alert intake: one DAG run per alert episode, repeats and resolves."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from include.store.base import Database, add_entry, insert_once
from include.store.incident_records import AlertRun
from include.store.incidents import IncidentRepository
from include.store.records import incident_id_for, utcnow
from include.store.schema import alert_runs, incident_key_locks, incidents
from include.vocabulary import ACTIVE_INCIDENT_STATES, AlertStatus, TimelineKind


class IntakeRepository:
    """Alert intake: which DAG run handles which alert episode, its deduplication and resolves.

    Opening an incident unless it duplicates an open one is one transaction, under the incident key's
    lock row; it writes the incident through `incidents.open_in` in that transaction.
    """

    def __init__(self, db: Database, incidents: IncidentRepository) -> None:
        self.db = db
        self.incidents = incidents

    def open_incident_unless_duplicate(
        self, *, dag_id: str, run_id: str, incident_key: str, alert: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Open the run's incident unless another run's incident with the same key is open.

        Returns (this run's incident id, the open incident it duplicates or None). A duplicate is
        noted on the open incident's timeline and nothing is created for this run. Safe against
        concurrent twins: the key's lock row is written first, so they run one after the other.
        """
        incident_id = incident_id_for(dag_id, run_id)
        now = utcnow()
        with self.db.tx() as conn:
            insert_once(conn, incident_key_locks, incident_key=incident_key, touched_at=now)
            conn.execute(
                incident_key_locks.update()
                .where(incident_key_locks.c.incident_key == incident_key)
                .values(touched_at=now)
            )
            mine = conn.execute(sa.select(incidents.c.id).where(incidents.c.id == incident_id)).scalar()
            if mine is None:
                other = conn.execute(
                    sa.select(incidents.c.id)
                    .where(
                        incidents.c.incident_key == incident_key,
                        incidents.c.dag_id == dag_id,
                        incidents.c.state.in_(ACTIVE_INCIDENT_STATES),
                        incidents.c.id != incident_id,
                    )
                    .order_by(incidents.c.created_at)
                    .limit(1)
                ).scalar()
                if other is not None:
                    add_entry(conn, other, TimelineKind.DUPLICATE, {"dag_id": dag_id, "run_id": run_id})
                    return incident_id, other
                self.incidents.open_in(
                    conn,
                    incident_id=incident_id,
                    dag_id=dag_id,
                    run_id=run_id,
                    incident_key=incident_key,
                    alert=alert,
                )
        return incident_id, None

    def claim_alert_run(
        self,
        *,
        run_id: str,
        dag_id: str,
        incident_key: str,
        source: str,
        fingerprint: str | None,
        episode: str | None,
    ) -> bool:
        """Claim a DAG run id for an alert; only the first of any number of concurrent claims gets True."""
        with self.db.tx() as conn:
            return insert_once(
                conn,
                alert_runs,
                run_id=run_id,
                dag_id=dag_id,
                incident_key=incident_key,
                source=source,
                fingerprint=fingerprint,
                episode=episode,
                state=AlertStatus.FIRING,
                created_at=utcnow(),
            )

    def release_alert_run(self, run_id: str) -> None:
        """Forget a claim whose DAG run could not be started, so the sender's retry can start it."""
        with self.db.tx() as conn:
            conn.execute(
                alert_runs.delete().where(
                    alert_runs.c.run_id == run_id, alert_runs.c.state == AlertStatus.FIRING
                )
            )

    def get_alert_run(self, run_id: str) -> AlertRun | None:
        """Return the intake row of a DAG run started for an alert, or None."""
        rows = self.db.rows(sa.select(alert_runs).where(alert_runs.c.run_id == run_id))
        return AlertRun.from_row(rows[0]) if rows else None

    def active_alert_run(self, incident_key: str, *, dag_id: str) -> AlertRun | None:
        """Return the run handling the key's open incident: an alert still firing whose incident is
        not resolved (or not opened yet), else any open incident with the key; None if neither."""
        # One query for the common case (a repeat): the firing rows with their incident, if opened.
        firing = (
            sa.select(alert_runs, incidents.c.state.label("incident_state"))
            .select_from(
                alert_runs.outerjoin(
                    incidents,
                    sa.and_(
                        incidents.c.incident_key == alert_runs.c.incident_key,
                        incidents.c.dag_id == alert_runs.c.dag_id,
                        incidents.c.run_id == alert_runs.c.run_id,
                    ),
                )
            )
            .where(
                alert_runs.c.incident_key == incident_key,
                alert_runs.c.dag_id == dag_id,
                alert_runs.c.state == AlertStatus.FIRING,
            )
            .order_by(alert_runs.c.created_at.desc())
            .limit(5)
        )
        with self.db.read() as conn:
            for row in conn.execute(firing).mappings():
                if row["incident_state"] is None or row["incident_state"] in ACTIVE_INCIDENT_STATES:
                    return AlertRun.from_row(row)
            run_id = conn.execute(
                sa.select(incidents.c.run_id)
                .where(
                    incidents.c.incident_key == incident_key,
                    incidents.c.dag_id == dag_id,
                    incidents.c.state.in_(ACTIVE_INCIDENT_STATES),
                )
                .order_by(incidents.c.created_at.desc())
                .limit(1)
            ).scalar()
        if run_id is None:
            return None
        # An open incident whose intake row is gone (or that another entry point started).
        return AlertRun(
            run_id=run_id,
            dag_id=dag_id,
            incident_key=incident_key,
            source=None,
            fingerprint=None,
            episode=None,
            state=AlertStatus.FIRING,
            created_at=None,
            resolved_at=None,
        )

    def latest_alert_run(
        self, incident_key: str, *, dag_id: str, state: AlertStatus | str | None = None
    ) -> AlertRun | None:
        """Return the key's most recent intake row, optionally only one in `state`."""
        query = (
            sa.select(alert_runs)
            .where(alert_runs.c.incident_key == incident_key, alert_runs.c.dag_id == dag_id)
            .order_by(alert_runs.c.created_at.desc())
            .limit(1)
        )
        if state:
            query = query.where(alert_runs.c.state == AlertStatus(state))
        rows = self.db.rows(query)
        return AlertRun.from_row(rows[0]) if rows else None

    def alert_generation(self, incident_key: str, *, dag_id: str) -> int:
        """Return how many runs were started for the key without a start time (PagerDuty's episodes)."""
        with self.db.read() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(alert_runs)
                .where(
                    alert_runs.c.incident_key == incident_key,
                    alert_runs.c.dag_id == dag_id,
                    alert_runs.c.episode.like("gen:%"),
                )
            ).scalar_one()

    def resolve_alert_run(self, run_id: str, *, source: str) -> bool:
        """Record that the sender resolved the alert of a run; True for the first such notification."""
        with self.db.tx() as conn:
            row = conn.execute(sa.select(alert_runs.c.dag_id).where(alert_runs.c.run_id == run_id)).first()
            done = conn.execute(
                alert_runs.update()
                .where(alert_runs.c.run_id == run_id, alert_runs.c.state == AlertStatus.FIRING)
                .values(state=AlertStatus.RESOLVED, resolved_at=utcnow())
            ).rowcount
            if done and row is not None:
                incident_id = incident_id_for(row.dag_id, run_id)
                if self.incidents.exists_in(conn, incident_id):
                    add_entry(conn, incident_id, TimelineKind.ALERT_RESOLVED, {"source": source})
        return bool(done)

    def resolved_upstream(self, run_id: str) -> bool:
        """Say whether the sender already resolved the alert a DAG run was started for."""
        row = self.get_alert_run(run_id)
        return row is not None and row.resolved
