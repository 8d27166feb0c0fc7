"""The incident store: incidents, their timeline, alerts, approval records and votes, the outbox, actions.

It is its own database (SQLite by default, PostgreSQL in production), never Airflow's metadata DB.
Every write is idempotent or guarded by a state check, so task retries and concurrent voters are safe.

`IncidentStore` is a set of small repositories over one `Database` (the engine and its transaction
helper): ``store.incidents``, ``store.alerts``, ``store.approvals``, ``store.intake`` (alert runs),
``store.outbox``, ``store.actions``, ``store.postmortems`` and ``store.stats``. A write that spans
several of them runs in one transaction, one repository calling another's ``*_in(conn, ...)`` helper.
"""

from __future__ import annotations

from typing import Any, Self

from sqlalchemy.engine import Engine

from include.store.actions import ActionRepository
from include.store.alert_runs import IntakeRepository
from include.store.alerts import AlertRepository
from include.store.approvals import ApprovalRepository
from include.store.base import Database, make_engine
from include.store.incident_records import AlertRecord, AlertRun, Incident, TimelineEntry
from include.store.incidents import IncidentRepository
from include.store.outbox import OutboxRepository
from include.store.postmortems import PostmortemRepository
from include.store.records import (
    DECIDED_STATES,
    DECISIONS,
    PENDING,
    Approval,
    NotFound,
    StoreError,
    Vote,
    approval_id_for,
    aware,
    incident_id_for,
    utcnow,
)
from include.store.schema import metadata
from include.store.stats import StatsRepository
from include.vocabulary import ApprovalState, IncidentState

__all__ = [
    "DECIDED_STATES",
    "DECISIONS",
    "PENDING",
    "AlertRecord",
    "AlertRun",
    "Approval",
    "ApprovalState",
    "Database",
    "Incident",
    "IncidentState",
    "IncidentStore",
    "NotFound",
    "StoreError",
    "TimelineEntry",
    "Vote",
    "approval_id_for",
    "aware",
    "incident_id_for",
    "make_engine",
    "metadata",
    "utcnow",
]


class IncidentStore:
    """The incident store at one database URL, as its repositories."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = Database(engine)
        self.incidents = IncidentRepository(self.db)
        self.alerts = AlertRepository(self.db)
        self.approvals = ApprovalRepository(self.db, self.incidents)
        self.intake = IntakeRepository(self.db, self.incidents)
        self.outbox = OutboxRepository(self.db)
        self.actions = ActionRepository(self.db)
        self.postmortems = PostmortemRepository(self.db)
        self.stats = StatsRepository(self.db)

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open the store at `url` and create its tables if they are missing."""
        store = cls(make_engine(url))
        store.create_schema()
        return store

    def create_schema(self) -> None:
        """Create missing tables, columns and indexes, and count the totals the first time (an older
        store); safe to call any number of times, also concurrently."""
        self.db.create_schema()
        self.stats.count_once()

    def incident_document(self, incident_id: str) -> dict[str, Any]:
        """Return the incident as the incident API shows it (raises NotFound)."""
        from include.incident_document import incident_document

        incident = self.incidents.get(incident_id)
        return incident_document(
            incident,
            timeline=self.incidents.timeline(incident_id),
            approvals=[a.to_json() for a in self.approvals.find(run_id=incident.run_id)],
            actions=self.actions.for_incident(incident_id),
        )
