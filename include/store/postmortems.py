"""Postmortem narratives the model wrote, one per incident and digest of what it was written from."""

from __future__ import annotations

import sqlalchemy as sa

from include.store.base import Database, insert_once
from include.store.records import utcnow
from include.store.schema import postmortems


class PostmortemRepository:
    """Keep a narrative once per (incident, digest), so a download reuses it while the record is unchanged."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def narrative(self, incident_id: str, digest: str) -> tuple[str, str] | None:
        """Return the kept narrative and its author for the incident's record as `digest` names it."""
        rows = self.db.rows(
            sa.select(postmortems.c.narrative, postmortems.c.written_by).where(
                postmortems.c.incident_id == incident_id, postmortems.c.digest == digest
            )
        )
        return None if not rows else (rows[0]["narrative"], rows[0]["written_by"])

    def keep(self, incident_id: str, digest: str, narrative: str, written_by: str) -> None:
        """Keep a narrative the model wrote (the first one kept for a digest stays)."""
        with self.db.tx() as conn:
            insert_once(
                conn,
                postmortems,
                incident_id=incident_id,
                digest=digest,
                narrative=narrative,
                written_by=written_by,
                created_at=utcnow(),
            )
