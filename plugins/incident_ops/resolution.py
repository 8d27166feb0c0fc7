"""Resolved means no fix: the one rule that every step and service asks before it acts on an incident.

An incident is resolved before its fix when its sender cleared the alert (a resolved notification,
recorded by the intake) or when a responder resolved it by hand. Either way no fix runs, no approval
stays pending, and a run that had not opened its incident yet ends in `ingest`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.vocabulary import IncidentState, Outcome

if TYPE_CHECKING:
    from include.store import IncidentStore


def resolved_before_fix(store: IncidentStore, *, dag_id: str, run_id: str) -> Outcome | None:
    """Return how the run's incident was resolved (upstream or by hand), or None while it is not."""
    from include.store import NotFound, incident_id_for

    if store.intake.resolved_upstream(run_id):
        return Outcome.RESOLVED_UPSTREAM
    try:
        incident = store.incidents.get(incident_id_for(dag_id, run_id))
    except NotFound:
        return None
    return Outcome.RESOLVED_BY_HAND if incident.state == IncidentState.RESOLVED else None
