"""Approval records and their votes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from include.errors import Refused
from include.store.base import Database, add_entry, insert_once
from include.store.incidents import IncidentRepository
from include.store.records import (
    CLOSING_STATES,
    DECISIONS,
    PENDING,
    Approval,
    NotFound,
    Vote,
    approval_id_for,
    aware,
    utcnow,
)
from include.store.schema import approvals, votes
from include.store.totals import APPROVALS, count
from include.vocabulary import ApprovalState, Decision, TimelineKind

# Records read per query by approval_states.
STATE_BATCH = 1000


class ApprovalRepository:
    """Approval records and their votes: creation, counting, deciding, closing.

    A counted vote also acknowledges the incident, in the vote's transaction (`incidents.acknowledge_in`).
    """

    def __init__(self, db: Database, incidents: IncidentRepository) -> None:
        self.db = db
        self.incidents = incidents

    def create(
        self,
        *,
        incident_id: str,
        dag_id: str,
        run_id: str,
        action: str,
        risk: str,
        reasons: list[str],
        quorum: int,
        approvers: list[str] | None,
        deadline: timedelta,
        requested_by: str | None = None,
        forbid_self_approval: bool = False,
        people: dict[str, str] | None = None,
        action_digest: str | None = None,
    ) -> Approval:
        """Create the run's approval record for `action`, or return the existing one (retries)."""
        approval_id = approval_id_for(dag_id, run_id, action)
        now = utcnow()
        with self.db.tx() as conn:
            inserted = insert_once(
                conn,
                approvals,
                id=approval_id,
                incident_id=incident_id,
                dag_id=dag_id,
                run_id=run_id,
                action=action,
                risk=risk,
                reasons=reasons,
                quorum=quorum,
                approvers=approvers,
                requested_by=requested_by,
                forbid_self_approval=forbid_self_approval,
                people=people or None,
                action_digest=action_digest,
                state=PENDING,
                created_at=now,
                expires_at=now + deadline,
            )
            if inserted:
                detail = {"approval_id": approval_id, "action": action}
                add_entry(conn, incident_id, TimelineKind.APPROVAL_REQUESTED, detail)
        return self.get(approval_id)

    def set_message(self, approval_id: str, *, channel: str, ts: str) -> None:
        """Remember the Slack message that carries the record's buttons."""
        with self.db.tx() as conn:
            conn.execute(
                approvals.update()
                .where(approvals.c.id == approval_id)
                .values(slack_channel=channel, slack_ts=ts)
            )

    def get(self, approval_id: str) -> Approval:
        """Return the record with its votes."""
        with self.db.read() as conn:
            return self._load_approval(conn, approval_id)

    def state(self, approval_id: str) -> ApprovalState:
        """Return just the record's state (the trigger's cheap poll)."""
        with self.db.read() as conn:
            state = conn.execute(sa.select(approvals.c.state).where(approvals.c.id == approval_id)).scalar()
        if state is None:
            raise NotFound(f"no approval record {approval_id}")
        return ApprovalState(state)

    def states(self, approval_ids: Iterable[str]) -> dict[str, ApprovalState]:
        """Return the states of many records in one read per batch; unknown ids are left out."""
        wanted = list(dict.fromkeys(approval_ids))
        found: dict[str, ApprovalState] = {}
        with self.db.read() as conn:
            # Batches keep each IN list within every driver's parameter limit (SQLite: 32,766).
            for start in range(0, len(wanted), STATE_BATCH):
                batch = wanted[start : start + STATE_BATCH]
                rows = conn.execute(
                    sa.select(approvals.c.id, approvals.c.state).where(approvals.c.id.in_(batch))
                )
                found.update((row.id, ApprovalState(row.state)) for row in rows)
        return found

    def find(
        self, *, state: ApprovalState | str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[Approval]:
        """Return records, newest first, optionally filtered by state and DAG run."""
        query = sa.select(approvals.c.id).order_by(approvals.c.created_at.desc()).limit(limit)
        if state:
            query = query.where(approvals.c.state == ApprovalState(state))
        if run_id:
            query = query.where(approvals.c.run_id == run_id)
        with self.db.read() as conn:
            return [self._load_approval(conn, row.id) for row in conn.execute(query)]

    @staticmethod
    def _load_approval(conn: Connection, approval_id: str) -> Approval:
        row = conn.execute(sa.select(approvals).where(approvals.c.id == approval_id)).mappings().first()
        if row is None:
            raise NotFound(f"no approval record {approval_id}")
        vote_rows = conn.execute(
            sa.select(votes).where(votes.c.approval_id == approval_id).order_by(votes.c.id)
        ).mappings()
        cast = tuple(
            Vote(
                identity=v["identity"],
                channel=v["channel"],
                decision=v["decision"],
                comment=v["comment"],
                at=aware(v["at"]),
                accepted=v["accepted"],
                refused_because=v["refused_because"],
            )
            for v in vote_rows
        )
        fields = {k: row[k] for k in row.keys() if k != "touched_at"}
        for key in ("created_at", "expires_at", "decided_at"):
            fields[key] = aware(fields[key])
        fields["state"] = ApprovalState(fields["state"])
        fields["people"] = fields["people"] or {}
        return Approval(**fields, votes=cast)

    def _lock_approval(self, conn: Connection, approval_id: str) -> Approval:
        # Writing first takes the row lock on PostgreSQL and the write lock on SQLite, so two voters
        # cannot both read "one vote short of quorum" and leave the record pending.
        touched = conn.execute(
            approvals.update().where(approvals.c.id == approval_id).values(touched_at=utcnow())
        ).rowcount
        if not touched:
            raise NotFound(f"no approval record {approval_id}")
        return self._load_approval(conn, approval_id)

    def cast_vote(
        self,
        approval_id: str,
        *,
        identity: str,
        channel: str,
        decision: Decision | str,
        comment: str | None = None,
        role: str | None = None,
        now: datetime | None = None,
    ) -> Approval:
        """Count a vote and decide the record when it reaches quorum (or on any reject).

        Whether the vote counts is `approval_policy.vote_refusal`'s answer, read under the record's
        lock. A refused vote is kept in the audit trail (up to a cap per person) and raised as
        Refused; the record is unchanged, except that a vote past the deadline expires it.
        """
        from include.approval_policy import TOO_MANY, vote_refusal

        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        decision = Decision(decision)
        now = now or utcnow()
        with self.db.tx() as conn:
            record = self._lock_approval(conn, approval_id)
            refused = vote_refusal(record, identity=identity, channel=channel, role=role, now=now)
            if refused is not None and refused.expired:
                self._decide(conn, record, ApprovalState.EXPIRED, now)
            if refused is None or refused.code != TOO_MANY:
                conn.execute(
                    votes.insert().values(
                        approval_id=approval_id,
                        identity=identity,
                        channel=channel,
                        decision=str(decision),
                        comment=comment,
                        at=now,
                        accepted=refused is None,
                        refused_because=refused.reason if refused else None,
                    )
                )
                detail = {"approval_id": approval_id, "identity": identity, "channel": channel}
                if refused is None:
                    add_entry(
                        conn, record.incident_id, TimelineKind.VOTE, {**detail, "decision": str(decision)}
                    )
                else:
                    add_entry(
                        conn, record.incident_id, TimelineKind.VOTE_REFUSED, {**detail, "why": refused.reason}
                    )
            if refused is None:
                # A person answering the approval request has responded to the incident: it counts
                # as its acknowledgement (for MTTA) when nobody acknowledged it before.
                self.incidents.acknowledge_in(
                    conn, record.incident_id, by=record.person_of(identity), now=now, via="vote"
                )
                approvers = {record.person_of(v.identity) for v in record.votes if v.accepted}
                if decision == Decision.REJECT:
                    self._decide(conn, record, ApprovalState.REJECTED, now)
                elif len(approvers | {record.person_of(identity)}) >= record.quorum:
                    self._decide(conn, record, ApprovalState.APPROVED, now)
        if refused is not None:
            raise Refused(refused)
        return self.get(approval_id)

    def _decide(self, conn: Connection, record: Approval, state: ApprovalState, now: datetime) -> None:
        decided = conn.execute(
            approvals.update()
            .where(approvals.c.id == record.id, approvals.c.state == PENDING)
            .values(state=state, decided_at=now)
        ).rowcount
        add_entry(conn, record.incident_id, TimelineKind.approval(state), {"approval_id": record.id})
        if decided:
            count(conn, APPROVALS, (str(state),))

    def close(self, approval_id: str, *, state: ApprovalState | str, now: datetime | None = None) -> Approval:
        """Expire or cancel a pending record; a record already decided keeps its decision."""
        if state not in CLOSING_STATES:
            raise ValueError("only expired or cancelled can be set directly")
        state = ApprovalState(state)
        now = now or utcnow()
        with self.db.tx() as conn:
            record = self._lock_approval(conn, approval_id)
            if not record.decided:
                self._decide(conn, record, state, now)
        return self.get(approval_id)
