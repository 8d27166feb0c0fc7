"""What the incident store hands out: approval records and votes, ids, states, and its typed errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from include.vocabulary import ApprovalState, Decision

DECISIONS = tuple(Decision)


PENDING = ApprovalState.PENDING
DECIDED_STATES = tuple(state for state in ApprovalState if state.decided)
# Set by the product itself, never by a vote: the deadline passing, or the alert resolved upstream.
CLOSING_STATES = (ApprovalState.EXPIRED, ApprovalState.CANCELLED)


class StoreError(Exception):
    """Base class of the incident store's typed errors."""


class NotFound(StoreError):
    """No record with that id."""


def utcnow() -> datetime:
    """Return the current time, timezone-aware."""
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """Return `value` as an aware UTC datetime (SQLite hands back naive ones; everything here is UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def incident_id_for(dag_id: str, run_id: str) -> str:
    """Return the deterministic id of the incident a DAG run handles."""
    return "inc-" + hashlib.sha256(f"{dag_id}\x00{run_id}".encode()).hexdigest()[:12]


def approval_id_for(dag_id: str, run_id: str, action: str) -> str:
    """Return the deterministic id of a run's approval record, so a retried request reuses it."""
    return "apr-" + hashlib.sha256(f"{dag_id}\x00{run_id}\x00{action}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Vote:
    """A vote or a refused attempt, as kept for the audit trail."""

    identity: str
    channel: str
    decision: str
    comment: str | None
    at: datetime
    accepted: bool
    refused_because: str | None


@dataclass(frozen=True)
class Approval:
    """An approval record with its votes.

    `people` maps each identity of a person (an Airflow username, `slack:<user id>`) to that person,
    as the approvers configuration said when the record was created: quorum counts people.
    """

    id: str
    incident_id: str
    dag_id: str
    run_id: str
    action: str
    risk: str
    reasons: list[str]
    quorum: int
    approvers: list[str] | None
    requested_by: str | None
    forbid_self_approval: bool
    state: ApprovalState
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    slack_channel: str | None
    slack_ts: str | None
    votes: tuple[Vote, ...] = ()
    people: dict[str, str] = field(default_factory=dict)
    action_digest: str | None = None

    @property
    def decided(self) -> bool:
        """Say whether the record has left `pending`."""
        return self.state.decided

    @property
    def deciders(self) -> list[str]:
        """Return who cast the counted votes (identities), in order."""
        return [v.identity for v in self.votes if v.accepted]

    def person_of(self, identity: str) -> str:
        """Return the person behind an identity (the identity itself when no person lists it)."""
        return self.people.get(identity, identity)

    @property
    def voters(self) -> set[str]:
        """Return the people whose votes were counted."""
        return {self.person_of(v.identity) for v in self.votes if v.accepted}

    @property
    def approval_count(self) -> int:
        """Return how many different people's approvals were counted."""
        return len({self.person_of(v.identity) for v in self.votes if v.accepted and v.decision == "approve"})

    def refused_attempts(self, identity: str) -> int:
        """Return how many refused attempts of the person behind `identity` are kept."""
        person = self.person_of(identity)
        return sum(1 for v in self.votes if not v.accepted and self.person_of(v.identity) == person)

    def to_json(self) -> dict[str, Any]:
        """Return the record as the JSON API shows it."""
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "dag_id": self.dag_id,
            "dag_run_id": self.run_id,
            "action": self.action,
            "risk": self.risk,
            "reasons": self.reasons,
            "quorum": self.quorum,
            "approvals": self.approval_count,
            "approvers": self.approvers,
            "requested_by": self.requested_by,
            "state": str(self.state),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "votes": [
                {
                    "identity": v.identity,
                    "person": self.person_of(v.identity),
                    "channel": v.channel,
                    "decision": v.decision,
                    "comment": v.comment,
                    "at": v.at.isoformat(),
                    "accepted": v.accepted,
                    "refused_because": v.refused_because,
                }
                for v in self.votes
            ],
        }
