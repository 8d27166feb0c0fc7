"""What the incident store hands out about incidents and alerts: typed, frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from include.store.records import aware
from include.vocabulary import AlertStatus, IncidentState, Severity


def _severity(value: str | None) -> Severity | None:
    return Severity(value) if value else None


@dataclass(frozen=True)
class Incident:
    """An incident: the alert that opened it, where it stands, who acknowledged and resolved it."""

    id: str
    incident_key: str
    dag_id: str
    run_id: str
    device_id: str
    error: str
    source: str
    state: IncidentState
    severity: Severity | None
    alert: dict[str, Any]
    analysis: dict[str, Any] | None
    outcome: str | None
    slack_channel: str | None
    slack_ts: str | None
    ticket_id: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Incident:
        """Return the record of an `ir_incidents` row."""
        return cls(
            id=row["id"],
            incident_key=row["incident_key"],
            dag_id=row["dag_id"],
            run_id=row["run_id"],
            device_id=row["device_id"],
            error=row["error"],
            source=row["source"],
            state=IncidentState(row["state"]),
            severity=_severity(row["severity"]),
            alert=dict(row["alert"] or {}),
            analysis=row["analysis"],
            outcome=row["outcome"],
            slack_channel=row["slack_channel"],
            slack_ts=row["slack_ts"],
            ticket_id=row["ticket_id"],
            created_at=aware(row["created_at"]),
            acknowledged_at=aware(row["acknowledged_at"]),
            acknowledged_by=row["acknowledged_by"],
            resolved_at=aware(row["resolved_at"]),
            resolved_by=row["resolved_by"],
        )

    @property
    def active(self) -> bool:
        """Say whether the incident is still being handled (not resolved)."""
        return self.state.active

    def to_json(self) -> dict[str, Any]:
        """Return the incident's own fields as the incident API shows them (`incident_document` adds
        the start, MTTA and MTTR, the escalation, approvals, actions and timeline)."""
        return {
            "incident_id": self.id,
            "dag_id": self.dag_id,
            "dag_run_id": self.run_id,
            "device_id": self.device_id,
            "error": self.error,
            "source": self.source,
            "severity": str(self.severity) if self.severity else None,
            "state": str(self.state),
            "outcome": self.outcome,
            "opened_at": self.created_at.isoformat(),
            "acknowledged_at": _iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": _iso(self.resolved_at),
            "resolved_by": self.resolved_by,
            "ticket_id": self.ticket_id,
            "analysis": self.analysis,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class TimelineEntry:
    """One entry of an incident's timeline: when, what kind, and its details."""

    at: datetime
    kind: str
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: RowMapping) -> TimelineEntry:
        """Return the entry of an `ir_events` row."""
        return cls(at=aware(row["at"]), kind=row["kind"], detail=dict(row["detail"] or {}))

    @property
    def by(self) -> Any:
        """Return who the entry names as its actor, if anyone."""
        return self.detail.get("by")


@dataclass(frozen=True)
class AlertRecord:
    """One alert as a sender keeps firing and resolving it, under its (source, fingerprint)."""

    id: int
    incident_id: str | None
    source: str
    device_id: str
    error: str
    fingerprint: str
    status: AlertStatus
    first_seen: datetime
    last_seen: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> AlertRecord:
        """Return the record of an `ir_alerts` row."""
        return cls(
            id=int(row["id"]),
            incident_id=row["incident_id"],
            source=row["source"],
            device_id=row["device_id"],
            error=row["error"],
            fingerprint=row["fingerprint"],
            status=AlertStatus(row["status"]),
            first_seen=aware(row["first_seen"]),
            last_seen=aware(row["last_seen"]),
        )

    @property
    def firing(self) -> bool:
        """Say whether the sender last said the alert fires."""
        return self.status is AlertStatus.FIRING


@dataclass(frozen=True)
class AlertRun:
    """The DAG run started for an alert episode (the intake's row), for repeats and resolves."""

    run_id: str
    dag_id: str
    incident_key: str | None
    source: str | None
    fingerprint: str | None
    episode: str | None
    state: AlertStatus
    created_at: datetime | None
    resolved_at: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping) -> AlertRun:
        """Return the record of an `ir_alert_runs` row."""
        return cls(
            run_id=row["run_id"],
            dag_id=row["dag_id"],
            incident_key=row["incident_key"],
            source=row["source"],
            fingerprint=row["fingerprint"],
            episode=row["episode"],
            state=AlertStatus(row["state"]),
            created_at=aware(row["created_at"]),
            resolved_at=aware(row["resolved_at"]),
        )

    @property
    def resolved(self) -> bool:
        """Say whether the sender resolved the alert this run was started for."""
        return self.state is AlertStatus.RESOLVED
