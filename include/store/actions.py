"""Actions taken on devices: one row per run and action, claimed once, a failed one retried."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from include.store.base import Database, add_entry, insert_once
from include.store.records import utcnow
from include.store.schema import actions
from include.vocabulary import ActionState, TimelineKind


class ActionRepository:
    """Claims and results of device actions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(
        self, *, key: str, incident_id: str, action: str, target: str, dry_run: bool
    ) -> tuple[dict[str, Any], bool]:
        """Claim an action under its idempotency key; return (row, True) only for the first claim."""
        with self.db.tx() as conn:
            claimed = insert_once(
                conn,
                actions,
                idempotency_key=key,
                incident_id=incident_id,
                action=action,
                target=target,
                state=ActionState.STARTED,
                dry_run=dry_run,
                started_at=utcnow(),
            )
            if not claimed:
                # Only a failed attempt may be taken over, and only by one of the workers that try.
                claimed = bool(
                    conn.execute(
                        actions.update()
                        .where(actions.c.idempotency_key == key, actions.c.state == ActionState.FAILED)
                        .values(state=ActionState.STARTED, started_at=utcnow(), finished_at=None)
                    ).rowcount
                )
            row = conn.execute(sa.select(actions).where(actions.c.idempotency_key == key)).mappings().one()
        return dict(row), claimed

    def finish(self, key: str, *, state: ActionState | str, result: dict[str, Any]) -> None:
        """Record an action's result (done or failed)."""
        state = ActionState(state)
        with self.db.tx() as conn:
            row = conn.execute(
                sa.select(actions.c.incident_id, actions.c.action).where(actions.c.idempotency_key == key)
            ).one()
            conn.execute(
                actions.update()
                .where(actions.c.idempotency_key == key)
                .values(state=state, result=result, finished_at=utcnow())
            )
            add_entry(
                conn, row.incident_id, TimelineKind.action(state), {"action": row.action, **_small(result)}
            )

    def for_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the incident's actions, oldest first."""
        return [dict(row) for row in self.db.incident_rows(actions, incident_id)]


def _small(result: dict[str, Any]) -> dict[str, Any]:
    """Keep timeline entries small: drop any field that serialises to more than 500 characters."""
    return {k: v for k, v in result.items() if len(json.dumps(v, default=str)) <= 500}
