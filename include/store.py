"""The incident store: incidents, their timeline, approval records and votes, the outbox, actions.

It is its own database (SQLite by default, PostgreSQL in production), never Airflow's metadata DB.
Every write is idempotent or guarded by a state check, so task retries and concurrent voters are safe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

incidents = sa.Table(
    "ir_incidents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("incident_key", sa.String(64), nullable=False, index=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("device_id", sa.String(128), nullable=False),
    sa.Column("error", sa.String(128), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open | resolved
    sa.Column("severity", sa.String(16)),
    sa.Column("alert", sa.JSON, nullable=False),
    sa.Column("analysis", sa.JSON),
    sa.Column("outcome", sa.String(32)),
    sa.Column("slack_channel", sa.String(128)),
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("ticket_id", sa.String(128)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)

events = sa.Table(
    "ir_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)

approvals = sa.Table(
    "ir_approvals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("risk", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("quorum", sa.Integer, nullable=False),
    sa.Column("approvers", sa.JSON),  # null: any Airflow user with the user role
    sa.Column("requested_by", sa.String(128)),
    sa.Column("forbid_self_approval", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("slack_channel", sa.String(128)),
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("touched_at", sa.DateTime(timezone=True)),
)

votes = sa.Table(
    "ir_votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("approval_id", sa.String(64), nullable=False, index=True),
    sa.Column("identity", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # slack | web | api | system
    sa.Column("decision", sa.String(16), nullable=False),  # approve | reject
    sa.Column("comment", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("refused_because", sa.Text),
)

outbox = sa.Table(
    "ir_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(250), nullable=False, unique=True),
    sa.Column("incident_id", sa.String(64), index=True),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("blocks", sa.JSON),
    sa.Column("state", sa.String(16), nullable=False),  # pending | sent | undelivered
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("thread_ts", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("note", sa.Text),
)

actions = sa.Table(
    "ir_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(250), nullable=False, unique=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # started | done | failed
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("result", sa.JSON),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

# Alert intake (the webhook): one row per DAG run started for an alert, so that repeats of the alert
# find their run, concurrent twins cannot both start one, and a resolve finds what to close.
alert_runs = sa.Table(
    "ir_alert_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("incident_key", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(256)),
    sa.Column("episode", sa.String(64)),  # the alert's start time, or gen:<n> when the sender has none
    sa.Column("state", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)

# One row per incident key, written first by the transaction that opens an incident for an alert
# with a fingerprint: it serialises those transactions, so two runs of one alert cannot both open one.
incident_key_locks = sa.Table(
    "ir_incident_key_locks",
    metadata,
    sa.Column("incident_key", sa.String(64), primary_key=True),
    sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
)

PENDING = "pending"
DECIDED_STATES = ("approved", "rejected", "expired", "cancelled")


class StoreError(Exception):
    """Base class of the incident store's typed errors."""


class NotFound(StoreError):
    """No record with that id."""


class VoteRefused(StoreError):
    """A vote was not counted; the refusal itself is kept for the audit trail.

    :param reason: Why, in words an operator can act on.
    :param code: ``forbidden`` (not an allowed approver) or ``conflict`` (already decided, expired,
        or a second vote by the same person).
    """

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def utcnow() -> datetime:
    """Return the current time, timezone-aware."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
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
    """An approval record with its votes."""

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
    state: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    slack_channel: str | None
    slack_ts: str | None
    votes: tuple[Vote, ...] = ()

    @property
    def decided(self) -> bool:
        """Say whether the record has left `pending`."""
        return self.state != PENDING

    @property
    def deciders(self) -> list[str]:
        """Return who cast the counted votes, in order."""
        return [v.identity for v in self.votes if v.accepted]

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
            "approvers": self.approvers,
            "requested_by": self.requested_by,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "votes": [
                {
                    "identity": v.identity,
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


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the triggerer read while a voter writes; the busy timeout queues writers.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for the store at `url`, tuned for short transactions."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 15}, poolclass=sa.pool.NullPool)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


class IncidentStore:
    """Reads and writes the incident store at one database URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> IncidentStore:
        """Open the store at `url` and create its tables if they are missing."""
        store = cls(make_engine(url))
        store.create_schema()
        return store

    def create_schema(self) -> None:
        """Create missing tables; safe to call any number of times, also concurrently."""
        # Another worker may create a table between our check and our CREATE (SQLite commits each
        # CREATE on its own): every clash leaves one table fewer to create, so this ends.
        for _ in range(len(metadata.tables)):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                return
            except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
                continue
        metadata.create_all(self.engine, checkfirst=True)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @staticmethod
    def _insert_once(conn: Connection, table: sa.Table, **values: Any) -> bool:
        """Insert a row unless its key exists, even if a concurrent twin just wrote it; True if inserted."""
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise StoreError(f"unsupported database {conn.dialect.name}: use PostgreSQL or SQLite")
        return bool(conn.execute(insert(table).values(**values).on_conflict_do_nothing()).rowcount)

    # -- incidents -------------------------------------------------------------------------------

    def open_incident(self, *, dag_id: str, run_id: str, incident_key: str, alert: dict[str, Any]) -> str:
        """Create the run's incident if it does not exist yet; return its id."""
        incident_id = incident_id_for(dag_id, run_id)
        with self._tx() as conn:
            inserted = self._insert_once(
                conn,
                incidents,
                id=incident_id,
                incident_key=incident_key,
                dag_id=dag_id,
                run_id=run_id,
                device_id=alert["device_id"],
                error=alert["error"],
                source=alert.get("source") or "api",
                state="open",
                severity=alert.get("severity"),
                alert=alert,
                created_at=utcnow(),
            )
            if inserted:
                self._event(
                    conn, incident_id, "opened", {"device_id": alert["device_id"], "error": alert["error"]}
                )
        return incident_id

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        """Return the incident row as a dict."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).mappings().first()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        result = dict(row)
        result["created_at"] = _aware(result["created_at"])
        result["resolved_at"] = _aware(result["resolved_at"])
        return result

    def update_incident(self, incident_id: str, **values: Any) -> None:
        """Set fields of an incident (severity, analysis, ticket, Slack thread, outcome)."""
        allowed = {"severity", "analysis", "ticket_id", "slack_channel", "slack_ts", "outcome"}
        if set(values) - allowed:
            raise ValueError(f"cannot update {sorted(set(values) - allowed)}")
        with self._tx() as conn:
            conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))

    def set_thread(self, incident_id: str, *, channel: str, ts: str) -> tuple[str, str]:
        """Make (channel, ts) the incident's Slack thread unless it has one; return the thread."""
        with self._tx() as conn:
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

    def resolve_incident(self, incident_id: str, *, outcome: str) -> None:
        """Mark the incident resolved with its outcome; a second call keeps the first."""
        with self._tx() as conn:
            done = conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id, incidents.c.state == "open")
                .values(state="resolved", outcome=outcome, resolved_at=utcnow())
            ).rowcount
            if done:
                self._event(conn, incident_id, "resolved", {"outcome": outcome})

    # -- timeline --------------------------------------------------------------------------------

    def add_event(self, incident_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Append an entry to the incident's timeline."""
        with self._tx() as conn:
            self._event(conn, incident_id, kind, detail or {})

    @staticmethod
    def _event(conn: Connection, incident_id: str, kind: str, detail: dict[str, Any]) -> None:
        conn.execute(events.insert().values(incident_id=incident_id, at=utcnow(), kind=kind, detail=detail))

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the incident's timeline, oldest first."""
        return [{**row, "at": _aware(row["at"])} for row in self._incident_rows(events, incident_id)]

    def _incident_rows(self, table: sa.Table, incident_id: str) -> list[dict[str, Any]]:
        """Return the rows of `table` that belong to an incident, oldest first."""
        with self.engine.connect() as conn:
            query = sa.select(table).where(table.c.incident_id == incident_id).order_by(table.c.id)
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- approval records ------------------------------------------------------------------------

    def create_approval(
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
    ) -> Approval:
        """Create the run's approval record for `action`, or return the existing one (retries)."""
        approval_id = approval_id_for(dag_id, run_id, action)
        now = utcnow()
        with self._tx() as conn:
            inserted = self._insert_once(
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
                state=PENDING,
                created_at=now,
                expires_at=now + deadline,
            )
            if inserted:
                self._event(
                    conn, incident_id, "approval_requested", {"approval_id": approval_id, "action": action}
                )
        return self.get_approval(approval_id)

    def set_approval_message(self, approval_id: str, *, channel: str, ts: str) -> None:
        """Remember the Slack message that carries the record's buttons."""
        with self._tx() as conn:
            conn.execute(
                approvals.update()
                .where(approvals.c.id == approval_id)
                .values(slack_channel=channel, slack_ts=ts)
            )

    def get_approval(self, approval_id: str) -> Approval:
        """Return the record with its votes."""
        with self.engine.connect() as conn:
            return self._load_approval(conn, approval_id)

    def approval_state(self, approval_id: str) -> str:
        """Return just the record's state (the trigger's cheap poll)."""
        with self.engine.connect() as conn:
            state = conn.execute(sa.select(approvals.c.state).where(approvals.c.id == approval_id)).scalar()
        if state is None:
            raise NotFound(f"no approval record {approval_id}")
        return state

    def list_approvals(
        self, *, state: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[Approval]:
        """Return records, newest first, optionally filtered by state and DAG run."""
        query = sa.select(approvals.c.id).order_by(approvals.c.created_at.desc()).limit(limit)
        if state:
            query = query.where(approvals.c.state == state)
        if run_id:
            query = query.where(approvals.c.run_id == run_id)
        with self.engine.connect() as conn:
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
                at=_aware(v["at"]),
                accepted=v["accepted"],
                refused_because=v["refused_because"],
            )
            for v in vote_rows
        )
        fields = {k: row[k] for k in row.keys() if k != "touched_at"}
        for key in ("created_at", "expires_at", "decided_at"):
            fields[key] = _aware(fields[key])
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
        decision: str,
        comment: str | None = None,
        refused_because: str | None = None,
        now: datetime | None = None,
    ) -> Approval:
        """Count a vote and decide the record when it reaches quorum (or on any reject).

        A refusal decided by the caller (`refused_because`) or found here (decided, expired, a
        second vote) is kept in the audit trail and raised as VoteRefused; the record is unchanged.
        """
        if decision not in ("approve", "reject"):
            raise ValueError("decision must be 'approve' or 'reject'")
        now = now or utcnow()
        with self._tx() as conn:
            record = self._lock_approval(conn, approval_id)
            code = "forbidden" if refused_because else "conflict"
            if not refused_because:
                refused_because = self._conflict(conn, record, identity, now)
            accepted = refused_because is None
            conn.execute(
                votes.insert().values(
                    approval_id=approval_id,
                    identity=identity,
                    channel=channel,
                    decision=decision,
                    comment=comment,
                    at=now,
                    accepted=accepted,
                    refused_because=refused_because,
                )
            )
            if accepted:
                self._event(
                    conn,
                    record.incident_id,
                    "vote",
                    {
                        "approval_id": approval_id,
                        "identity": identity,
                        "channel": channel,
                        "decision": decision,
                    },
                )
                approvals_so_far = {
                    v.identity for v in record.votes if v.accepted and v.decision == "approve"
                }
                if decision == "reject":
                    self._decide(conn, record, "rejected", now)
                elif len(approvals_so_far | {identity}) >= record.quorum:
                    self._decide(conn, record, "approved", now)
            else:
                self._event(
                    conn,
                    record.incident_id,
                    "vote_refused",
                    {
                        "approval_id": approval_id,
                        "identity": identity,
                        "channel": channel,
                        "why": refused_because,
                    },
                )
        if not accepted:
            raise VoteRefused(refused_because, code=code)
        return self.get_approval(approval_id)

    def _conflict(self, conn: Connection, record: Approval, identity: str, now: datetime) -> str | None:
        if record.decided:
            return f"the request was already {record.state}"
        if now >= record.expires_at:
            self._decide(conn, record, "expired", now)
            return "the request has expired"
        if identity in record.deciders:
            return f"{identity} has already voted"
        return None

    def _decide(self, conn: Connection, record: Approval, state: str, now: datetime) -> None:
        conn.execute(
            approvals.update()
            .where(approvals.c.id == record.id, approvals.c.state == PENDING)
            .values(state=state, decided_at=now)
        )
        self._event(conn, record.incident_id, "approval_" + state, {"approval_id": record.id})

    def close_approval(self, approval_id: str, *, state: str, now: datetime | None = None) -> Approval:
        """Expire or cancel a pending record; a record already decided keeps its decision."""
        if state not in ("expired", "cancelled"):
            raise ValueError("only expired or cancelled can be set directly")
        now = now or utcnow()
        with self._tx() as conn:
            record = self._lock_approval(conn, approval_id)
            if not record.decided:
                self._decide(conn, record, state, now)
        return self.get_approval(approval_id)

    # -- outbox ----------------------------------------------------------------------------------

    def enqueue_message(
        self, *, key: str, incident_id: str | None, channel: str, text: str, blocks: list[dict] | None
    ) -> dict[str, Any]:
        """Queue a message under an idempotency key; a retry gets the row already queued."""
        with self._tx() as conn:
            self._insert_once(
                conn,
                outbox,
                key=key,
                incident_id=incident_id,
                channel=channel,
                text=text,
                blocks=blocks,
                state="pending",
                created_at=utcnow(),
            )
            row = conn.execute(sa.select(outbox).where(outbox.c.key == key)).mappings().one()
        return dict(row)

    def mark_message(
        self,
        key: str,
        *,
        state: str,
        slack_ts: str | None = None,
        thread_ts: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record how a queued message fared."""
        with self._tx() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.key == key)
                .values(
                    state=state,
                    slack_ts=slack_ts,
                    thread_ts=thread_ts,
                    note=note,
                    sent_at=utcnow() if state == "sent" else None,
                )
            )

    def messages(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the incident's messages in the order they were queued."""
        return self._incident_rows(outbox, incident_id)

    # -- actions ---------------------------------------------------------------------------------

    def begin_action(
        self, *, key: str, incident_id: str, action: str, target: str, dry_run: bool
    ) -> tuple[dict[str, Any], bool]:
        """Claim an action under its idempotency key; return (row, True) only for the first claim."""
        with self._tx() as conn:
            claimed = self._insert_once(
                conn,
                actions,
                idempotency_key=key,
                incident_id=incident_id,
                action=action,
                target=target,
                state="started",
                dry_run=dry_run,
                started_at=utcnow(),
            )
            if not claimed:
                # Only a failed attempt may be taken over, and only by one of the workers that try.
                claimed = bool(
                    conn.execute(
                        actions.update()
                        .where(actions.c.idempotency_key == key, actions.c.state == "failed")
                        .values(state="started", started_at=utcnow(), finished_at=None)
                    ).rowcount
                )
            row = conn.execute(sa.select(actions).where(actions.c.idempotency_key == key)).mappings().one()
        return dict(row), claimed

    def finish_action(self, key: str, *, state: str, result: dict[str, Any]) -> None:
        """Record an action's result (done or failed)."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(actions.c.incident_id, actions.c.action).where(actions.c.idempotency_key == key)
            ).one()
            conn.execute(
                actions.update()
                .where(actions.c.idempotency_key == key)
                .values(state=state, result=result, finished_at=utcnow())
            )
            self._event(conn, row.incident_id, f"action_{state}", {"action": row.action, **_small(result)})

    def actions_for(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the incident's actions, oldest first."""
        return self._incident_rows(actions, incident_id)

    # -- alert intake and deduplication ----------------------------------------------------------

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
        with self._tx() as conn:
            self._insert_once(conn, incident_key_locks, incident_key=incident_key, touched_at=now)
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
                        incidents.c.state == "open",
                        incidents.c.id != incident_id,
                    )
                    .order_by(incidents.c.created_at)
                    .limit(1)
                ).scalar()
                if other is not None:
                    self._event(conn, other, "duplicate", {"dag_id": dag_id, "run_id": run_id})
                    return incident_id, other
                conn.execute(
                    incidents.insert().values(
                        id=incident_id,
                        incident_key=incident_key,
                        dag_id=dag_id,
                        run_id=run_id,
                        device_id=alert["device_id"],
                        error=alert["error"],
                        source=alert.get("source") or "api",
                        state="open",
                        severity=alert.get("severity"),
                        alert=alert,
                        created_at=now,
                    )
                )
                self._event(
                    conn, incident_id, "opened", {"device_id": alert["device_id"], "error": alert["error"]}
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
        with self._tx() as conn:
            return self._insert_once(
                conn,
                alert_runs,
                run_id=run_id,
                dag_id=dag_id,
                incident_key=incident_key,
                source=source,
                fingerprint=fingerprint,
                episode=episode,
                state="firing",
                created_at=utcnow(),
            )

    def release_alert_run(self, run_id: str) -> None:
        """Forget a claim whose DAG run could not be started, so the sender's retry can start it."""
        with self._tx() as conn:
            conn.execute(
                alert_runs.delete().where(alert_runs.c.run_id == run_id, alert_runs.c.state == "firing")
            )

    def get_alert_run(self, run_id: str) -> dict[str, Any] | None:
        """Return the intake row of a DAG run started for an alert, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(alert_runs).where(alert_runs.c.run_id == run_id)).mappings().first()
        return _alert_run(row)

    def active_alert_run(self, incident_key: str, *, dag_id: str) -> dict[str, Any] | None:
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
                alert_runs.c.state == "firing",
            )
            .order_by(alert_runs.c.created_at.desc())
            .limit(5)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(firing).mappings():
                if row["incident_state"] in (None, "open"):
                    return _alert_run({k: v for k, v in row.items() if k != "incident_state"})
            run_id = conn.execute(
                sa.select(incidents.c.run_id)
                .where(
                    incidents.c.incident_key == incident_key,
                    incidents.c.dag_id == dag_id,
                    incidents.c.state == "open",
                )
                .order_by(incidents.c.created_at.desc())
                .limit(1)
            ).scalar()
        return None if run_id is None else {"run_id": run_id, "dag_id": dag_id, "state": "firing"}

    def latest_alert_run(
        self, incident_key: str, *, dag_id: str, state: str | None = None
    ) -> dict[str, Any] | None:
        """Return the key's most recent intake row, optionally only one in `state`."""
        query = (
            sa.select(alert_runs)
            .where(alert_runs.c.incident_key == incident_key, alert_runs.c.dag_id == dag_id)
            .order_by(alert_runs.c.created_at.desc())
            .limit(1)
        )
        if state:
            query = query.where(alert_runs.c.state == state)
        with self.engine.connect() as conn:
            return _alert_run(conn.execute(query).mappings().first())

    def alert_generation(self, incident_key: str, *, dag_id: str) -> int:
        """Return how many runs were started for the key without a start time (PagerDuty's episodes)."""
        with self.engine.connect() as conn:
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
        with self._tx() as conn:
            row = conn.execute(sa.select(alert_runs.c.dag_id).where(alert_runs.c.run_id == run_id)).first()
            done = conn.execute(
                alert_runs.update()
                .where(alert_runs.c.run_id == run_id, alert_runs.c.state == "firing")
                .values(state="resolved", resolved_at=utcnow())
            ).rowcount
            if done and row is not None:
                incident_id = incident_id_for(row.dag_id, run_id)
                if conn.execute(sa.select(incidents.c.id).where(incidents.c.id == incident_id)).first():
                    self._event(conn, incident_id, "alert_resolved", {"source": source})
        return bool(done)

    def count_alert_runs(self, *, dag_id: str | None = None) -> int:
        """Return how many DAG runs were started for alerts (benchmarks and tests)."""
        query = sa.select(sa.func.count()).select_from(alert_runs)
        if dag_id:
            query = query.where(alert_runs.c.dag_id == dag_id)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()


def _alert_run(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    result = dict(row)
    result["created_at"] = _aware(result["created_at"])
    result["resolved_at"] = _aware(result["resolved_at"])
    return result


def _small(result: dict[str, Any]) -> dict[str, Any]:
    """Keep timeline entries small: drop any field that serialises to more than 500 characters."""
    return {k: v for k, v in result.items() if len(json.dumps(v, default=str)) <= 500}
