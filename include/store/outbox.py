"""The message outbox: every message under an idempotency key, with its Slack `ts` once posted."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from include.store.base import Database, insert_once
from include.store.records import utcnow
from include.store.schema import outbox
from include.vocabulary import OutboxState


class OutboxRepository:
    """Messages queued for Slack and how each fared."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(
        self,
        *,
        key: str,
        incident_id: str | None,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        """Queue a message under an idempotency key; a retry gets the row already queued."""
        with self.db.tx() as conn:
            insert_once(
                conn,
                outbox,
                key=key,
                incident_id=incident_id,
                channel=channel,
                text=text,
                blocks=blocks,
                state=OutboxState.PENDING,
                created_at=utcnow(),
            )
            row = conn.execute(sa.select(outbox).where(outbox.c.key == key)).mappings().one()
        return dict(row)

    def mark(
        self,
        key: str,
        *,
        state: OutboxState | str,
        slack_ts: str | None = None,
        thread_ts: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record how a queued message fared."""
        with self.db.tx() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.key == key)
                .values(
                    state=str(state),
                    slack_ts=slack_ts,
                    thread_ts=thread_ts,
                    note=note,
                    sent_at=utcnow() if state == OutboxState.SENT else None,
                )
            )

    def for_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the incident's messages in the order they were queued."""
        return [dict(row) for row in self.db.incident_rows(outbox, incident_id)]
