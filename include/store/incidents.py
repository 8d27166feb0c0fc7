"""Incidents, their timeline, the message outbox and executed actions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from include.incident_stats import DURATION_BUCKETS, LATENCY_BUCKETS, severity_label
from include.store.records import NotFound, aware, incident_id_for, utcnow
from include.store.schema import actions, events, incidents, outbox, postmortems
from include.store.totals import (
    INCIDENTS,
    MODEL_CALLS,
    TIME_TO_ACKNOWLEDGE,
    TIME_TO_RESOLVE,
    MetricTotals,
)
from include.vocabulary import ACTIVE_INCIDENT_STATES, IncidentState

LLM_CALL = "llm_call"  # the timeline entry of an AI step: its step, analyzer and latency_ms


def model_call_labels(detail: dict[str, Any]) -> tuple[str, str]:
    """Return (step, outcome) of an AI step entry: ``answered`` when the model's answer was used."""
    return str(detail.get("step") or "unknown"), "answered" if detail.get("analyzer") == "llm" else "fallback"


def model_call_seconds(detail: dict[str, Any]) -> float:
    """Return an AI step entry's latency in seconds (0 when it has none)."""
    try:
        return max(0.0, float(detail.get("latency_ms") or 0) / 1000.0)
    except (TypeError, ValueError):
        return 0.0


class IncidentRecords(MetricTotals):
    """Incidents, their timeline, the message outbox and the actions taken."""

    # -- incidents -------------------------------------------------------------------------------

    def open_incident(self, *, dag_id: str, run_id: str, incident_key: str, alert: dict[str, Any]) -> str:
        """Create the run's incident if it does not exist yet; return its id."""
        incident_id = incident_id_for(dag_id, run_id)
        with self._tx() as conn:
            self._insert_incident(
                conn,
                incident_id=incident_id,
                dag_id=dag_id,
                run_id=run_id,
                incident_key=incident_key,
                alert=alert,
            )
        return incident_id

    def _insert_incident(
        self,
        conn: Connection,
        *,
        incident_id: str,
        dag_id: str,
        run_id: str,
        incident_key: str,
        alert: dict[str, Any],
    ) -> None:
        """Insert an open incident and its "opened" timeline entry, unless the incident exists."""
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
            state=IncidentState.OPEN,
            severity=alert.get("severity"),
            alert=alert,
            created_at=utcnow(),
        )
        if inserted:
            opened = {"device_id": alert["device_id"], "error": alert["error"]}
            self._event(conn, incident_id, "opened", opened)

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        """Return the incident row as a dict."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).mappings().first()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        result = dict(row)
        for key in ("created_at", "resolved_at", "acknowledged_at"):
            result[key] = aware(result[key])
        result["state"] = IncidentState(result["state"])
        return result

    def incident_ids(self, *, state: IncidentState | None = None, limit: int = 100) -> list[str]:
        """Return the ids of incidents (in `state`, if given), newest first."""
        query = sa.select(incidents.c.id).order_by(incidents.c.created_at.desc(), incidents.c.id).limit(limit)
        if state is not None:
            query = query.where(incidents.c.state == IncidentState(state))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def update_incident(self, incident_id: str, **values: Any) -> None:
        """Set fields of an incident (severity, analysis, ticket, Slack thread, outcome)."""
        allowed = {"severity", "analysis", "ticket_id", "slack_channel", "slack_ts", "outcome"}
        if set(values) - allowed:
            raise ValueError(f"cannot update {sorted(set(values) - allowed)}")
        with self._tx() as conn:
            if "analysis" in values:
                # The first diagnosis counts the incident, under the severity it found: counted
                # earlier, a series would go down when the diagnosis changes the alert's severity.
                first = conn.execute(
                    incidents.update()
                    .where(incidents.c.id == incident_id, incidents.c.analysis.is_(None))
                    .values(**values)
                ).rowcount
                if first:
                    row = conn.execute(
                        sa.select(incidents.c.severity, incidents.c.source).where(
                            incidents.c.id == incident_id
                        )
                    ).one()
                    self._count(conn, INCIDENTS, (severity_label(row.severity), row.source))
                    return
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

    def acknowledge_incident(self, incident_id: str, *, by: str) -> bool:
        """Record that a responder acknowledged an open incident; False when it was not open."""
        with self._tx() as conn:
            return self._acknowledge(conn, incident_id, by=by, now=utcnow())

    def _acknowledge(
        self, conn: Connection, incident_id: str, *, by: str, now: datetime, via: str | None = None
    ) -> bool:
        """Move an open incident to acknowledged in `conn`'s transaction; False when it was not open."""
        done = conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.state == IncidentState.OPEN)
            .values(state=IncidentState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)
        ).rowcount
        if done:
            self._event(conn, incident_id, "acknowledged", {"by": by, **({"via": via} if via else {})})
            self._observe_since_opened(conn, incident_id, TIME_TO_ACKNOWLEDGE, now)
        return bool(done)

    def resolve_incident(self, incident_id: str, *, outcome: str, by: str | None = None) -> bool:
        """Mark the incident resolved with its outcome (and who, when a person did); the first call wins."""
        now = utcnow()
        with self._tx() as conn:
            done = conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id, incidents.c.state.in_(ACTIVE_INCIDENT_STATES))
                .values(state=IncidentState.RESOLVED, outcome=outcome, resolved_at=now, resolved_by=by)
            ).rowcount
            if done:
                self._event(conn, incident_id, "resolved", {"outcome": outcome, "by": by})
                self._observe_since_opened(conn, incident_id, TIME_TO_RESOLVE, now)
        return bool(done)

    def _observe_since_opened(self, conn: Connection, incident_id: str, metric: str, now: datetime) -> None:
        opened: datetime = conn.execute(
            sa.select(incidents.c.created_at).where(incidents.c.id == incident_id)
        ).scalar_one()
        self._observe(conn, metric, (), DURATION_BUCKETS, (now - aware(opened)).total_seconds())

    # -- timeline --------------------------------------------------------------------------------

    def add_event(self, incident_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        """Append an entry to the incident's timeline."""
        detail = detail or {}
        with self._tx() as conn:
            self._event(conn, incident_id, kind, detail)
            if kind == LLM_CALL:
                seconds = model_call_seconds(detail)
                self._observe(conn, MODEL_CALLS, model_call_labels(detail), LATENCY_BUCKETS, seconds)

    def add_event_unless(
        self,
        incident_id: str,
        kind: str,
        detail: dict[str, Any],
        *,
        full: Callable[[list[dict[str, Any]]], bool],
    ) -> bool:
        """Append an entry unless `full`, given the incident's entries of `kind`, says there are enough.

        Read and written under the incident's lock, so concurrent callers never pass the cap together;
        True when the entry was kept.
        """
        with self._tx() as conn:
            # Writing first takes the row lock on PostgreSQL and the write lock on SQLite.
            touched = conn.execute(
                incidents.update().where(incidents.c.id == incident_id).values(state=incidents.c.state)
            ).rowcount
            if not touched:
                raise NotFound(incident_id)
            query = sa.select(events.c.detail).where(
                events.c.incident_id == incident_id, events.c.kind == kind
            )
            if full([{"kind": kind, "detail": row.detail} for row in conn.execute(query)]):
                return False
            self._event(conn, incident_id, kind, detail)
        return True

    def postmortem_narrative(self, incident_id: str, digest: str) -> tuple[str, str] | None:
        """Return the kept narrative and its author for the incident's record as `digest` names it."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(postmortems.c.narrative, postmortems.c.written_by).where(
                    postmortems.c.incident_id == incident_id, postmortems.c.digest == digest
                )
            ).first()
        return None if row is None else (row.narrative, row.written_by)

    def keep_postmortem_narrative(
        self, incident_id: str, digest: str, narrative: str, written_by: str
    ) -> None:
        """Keep a narrative the model wrote (the first one kept for a digest stays)."""
        with self._tx() as conn:
            self._insert_once(
                conn,
                postmortems,
                incident_id=incident_id,
                digest=digest,
                narrative=narrative,
                written_by=written_by,
                created_at=utcnow(),
            )

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the incident's timeline, oldest first."""
        return [{**row, "at": aware(row["at"])} for row in self._incident_rows(events, incident_id)]

    # -- outbox ----------------------------------------------------------------------------------

    def enqueue_message(
        self,
        *,
        key: str,
        incident_id: str | None,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
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


def _small(result: dict[str, Any]) -> dict[str, Any]:
    """Keep timeline entries small: drop any field that serialises to more than 500 characters."""
    return {k: v for k, v in result.items() if len(json.dumps(v, default=str)) <= 500}
