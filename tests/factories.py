"""Records as the workflow makes them, for tests: one factory, used by every test package."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from include.names import DAG_ID

PUMP_ALERT = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api"}


def approval_record(
    store: Any,
    *,
    run_id: str | None = None,
    action: str = "isolate_pump",
    quorum: int = 1,
    approvers: list[str] | None = None,
    deadline: timedelta = timedelta(minutes=30),
    alert: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
    incident_key: str | None = None,
    **extra: Any,
):
    """Open a run's incident (with `analysis`, when given) and create its approval record, as the run does."""
    run_id = run_id or f"manual__{uuid.uuid4().hex[:10]}"
    incident_id = store.incidents.open(
        dag_id=DAG_ID,
        run_id=run_id,
        incident_key=incident_key or uuid.uuid4().hex[:16],
        alert={**PUMP_ALERT, **(alert or {})},
    )
    if analysis is not None:
        store.incidents.update(incident_id, severity=analysis.get("severity"), analysis=analysis)
    return store.approvals.create(
        incident_id=incident_id,
        dag_id=DAG_ID,
        run_id=run_id,
        action=action,
        risk="high",
        reasons=[f"action {action} is high risk"],
        quorum=quorum,
        approvers=approvers,
        deadline=deadline,
        **extra,
    )


def alert_run_count(store: Any, *, dag_id: str = DAG_ID) -> int:
    """Return how many DAG runs the alert intake started for `dag_id` (a count of its rows)."""
    import sqlalchemy as sa

    from include.store.schema import alert_runs

    query = sa.select(sa.func.count()).select_from(alert_runs).where(alert_runs.c.dag_id == dag_id)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def incident_record(**fields: Any):
    """Return an Incident record as the store hands it out, for code that only reads one."""
    from datetime import UTC, datetime

    from include.store import Incident, IncidentState

    values: dict[str, Any] = {
        "id": "inc-1",
        "incident_key": "key-1",
        "dag_id": DAG_ID,
        "run_id": "manual__1",
        "device_id": PUMP_ALERT["device_id"],
        "error": PUMP_ALERT["error"],
        "source": "api",
        "state": IncidentState.OPEN,
        "severity": None,
        "alert": dict(PUMP_ALERT),
        "analysis": None,
        "outcome": None,
        "slack_channel": None,
        "slack_ts": None,
        "ticket_id": None,
        "created_at": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolved_by": None,
    }
    values.update(fields)
    return Incident(**values)
