"""Alerts as senders keep sending them: one row per (source, fingerprint), first and last seen."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from include.store.base import Database, insert_once
from include.store.incident_records import AlertRecord
from include.store.records import NotFound, utcnow
from include.store.schema import alerts
from include.vocabulary import AlertStatus

# Rows a listing returns at most.
LIST_LIMIT = 500


class AlertRepository:
    """Record each alert once and keep when it was last seen and whether it fires."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        *,
        source: str,
        fingerprint: str,
        device_id: str,
        error: str,
        status: AlertStatus | str = AlertStatus.FIRING,
        incident_id: str | None = None,
        at: datetime | None = None,
    ) -> AlertRecord:
        """Record a notification of an alert: the first inserts its row, later ones update it.

        A later notification sets the status and `last_seen`; one older than what is stored (they may
        arrive out of order) changes nothing. The incident is set once, by the first that names one.
        """
        with self.db.tx() as conn:
            self.record_in(
                conn,
                source=source,
                fingerprint=fingerprint,
                device_id=device_id,
                error=error,
                status=status,
                incident_id=incident_id,
                at=at,
            )
            return self._get_in(conn, source, fingerprint)

    @staticmethod
    def record_in(
        conn: Connection,
        *,
        source: str,
        fingerprint: str,
        device_id: str,
        error: str,
        status: AlertStatus | str = AlertStatus.FIRING,
        incident_id: str | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Record a notification in `conn`'s transaction (see `record`); True when the row is new."""
        status, at = AlertStatus(status), at or utcnow()
        inserted = insert_once(
            conn,
            alerts,
            source=str(source),
            fingerprint=fingerprint,
            incident_id=incident_id,
            device_id=device_id,
            error=error,
            status=status,
            first_seen=at,
            last_seen=at,
        )
        if inserted:
            return True
        key = sa.and_(alerts.c.source == str(source), alerts.c.fingerprint == fingerprint)
        conn.execute(alerts.update().where(key, alerts.c.last_seen <= at).values(status=status, last_seen=at))
        if incident_id is not None:
            conn.execute(
                alerts.update().where(key, alerts.c.incident_id.is_(None)).values(incident_id=incident_id)
            )
        return False

    def attach(self, *, source: str, fingerprint: str, incident_id: str) -> AlertRecord:
        """Make the alert part of an incident (grouping), whatever incident it had; raises NotFound."""
        with self.db.tx() as conn:
            done = conn.execute(
                alerts.update()
                .where(alerts.c.source == str(source), alerts.c.fingerprint == fingerprint)
                .values(incident_id=incident_id)
            ).rowcount
            if not done:
                raise NotFound(f"no alert {source}:{fingerprint}")
            return self._get_in(conn, source, fingerprint)

    def get(self, *, source: str, fingerprint: str) -> AlertRecord | None:
        """Return the alert a sender sends under `fingerprint`, or None."""
        with self.db.read() as conn:
            row = (
                conn.execute(
                    sa.select(alerts).where(
                        alerts.c.source == str(source), alerts.c.fingerprint == fingerprint
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else AlertRecord.from_row(row)

    def for_incident(self, incident_id: str) -> list[AlertRecord]:
        """Return the alerts of an incident, first seen first."""
        return self._list(alerts.c.incident_id == incident_id)

    def for_device(
        self, device_id: str, *, status: AlertStatus | str | None = None, limit: int = LIST_LIMIT
    ) -> list[AlertRecord]:
        """Return a device's alerts (only those in `status`, when given), first seen first."""
        where = [alerts.c.device_id == device_id]
        if status is not None:
            where.append(alerts.c.status == AlertStatus(status))
        return self._list(*where, limit=limit)

    def by_fingerprint(self, fingerprint: str, *, limit: int = LIST_LIMIT) -> list[AlertRecord]:
        """Return the alerts with `fingerprint`, from any source, first seen first."""
        return self._list(alerts.c.fingerprint == fingerprint, limit=limit)

    def _list(self, *where: sa.ColumnElement[bool], limit: int = LIST_LIMIT) -> list[AlertRecord]:
        query = sa.select(alerts).where(*where).order_by(alerts.c.first_seen, alerts.c.id).limit(limit)
        return [AlertRecord.from_row(row) for row in self.db.rows(query)]

    @staticmethod
    def _get_in(conn: Connection, source: str, fingerprint: str) -> AlertRecord:
        row = (
            conn.execute(
                sa.select(alerts).where(alerts.c.source == str(source), alerts.c.fingerprint == fingerprint)
            )
            .mappings()
            .one()
        )
        return AlertRecord.from_row(row)
