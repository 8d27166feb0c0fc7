"""The incident store: incidents, their timeline, approval records and votes, the outbox, actions.

It is its own database (SQLite by default, PostgreSQL in production), never Airflow's metadata DB.
Every write is idempotent or guarded by a state check, so task retries and concurrent voters are safe.
"""

from __future__ import annotations

from typing import Any

from include.store.alert_runs import AlertIntake
from include.store.approvals import ApprovalRecords
from include.store.base import make_engine
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
from include.store.stats import IncidentStats
from include.vocabulary import ApprovalState, IncidentState

__all__ = [
    "DECIDED_STATES",
    "DECISIONS",
    "PENDING",
    "Approval",
    "ApprovalState",
    "IncidentState",
    "IncidentStore",
    "NotFound",
    "StoreError",
    "Vote",
    "approval_id_for",
    "aware",
    "incident_id_for",
    "make_engine",
    "metadata",
    "utcnow",
]


class IncidentStore(AlertIntake, ApprovalRecords, IncidentStats):
    """Reads and writes the incident store at one database URL."""

    def incident_document(self, incident_id: str) -> dict[str, Any]:
        """Return the incident as the incident API shows it (raises NotFound)."""
        from include.incident_document import incident_document

        incident = self.get_incident(incident_id)
        return incident_document(
            incident,
            timeline=self.timeline(incident_id),
            approvals=[a.to_json() for a in self.list_approvals(run_id=incident["run_id"])],
            actions=self.actions_for(incident_id),
        )
