"""The store's engine and the helpers its repositories share: transactions, insert-once, timeline entries."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from include.store.records import StoreError, utcnow
from include.store.schema import events, metadata


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the triggerer read while a voter writes; the busy timeout queues writers.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


# Every engine made here, so that a forked child (a task process, a pre-forked server worker) drops
# the connections it inherited instead of sharing their sockets and file handles with its parent.
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def make_engine(url: str) -> Engine:
    """Create an engine for the store at `url`, tuned for short transactions.

    Connections are pooled, SQLite's too: opening one (and setting its pragmas) was most of the cost
    of a deduplicated webhook. The pool hands a connection to one thread at a time.
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 15, "check_same_thread": False},
            poolclass=sa.pool.QueuePool,
            # The API server answers webhooks from a pool of 40 threads: keep enough connections open
            # that a burst does not open (and set up) new ones.
            pool_size=10,
            max_overflow=30,
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)
    _engines.add(engine)
    return engine


class Database:
    """The engine and the transaction helpers every repository of the store shares.

    Repositories never open their own engine: a write that spans several of them (a vote that also
    acknowledges the incident and raises a total) runs in one `tx()` and hands its connection on.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """Return the database's dialect name (``postgresql`` or ``sqlite``)."""
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Create missing tables, columns and indexes; safe to call any number of times, also concurrently."""
        # Another worker may create a table between our check and our CREATE (SQLite commits each
        # CREATE on its own): every clash leaves one table fewer to create, so this ends.
        for _ in range(len(metadata.tables)):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                break
            except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
                continue
        else:
            metadata.create_all(self.engine, checkfirst=True)
        self._add_missing_columns()
        self._add_missing_indexes()

    def _add_missing_columns(self) -> None:
        """Add the nullable columns a newer release defines to tables an older one created."""
        inspector = sa.inspect(self.engine)
        for table in metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present or not column.nullable:
                    continue
                kind = column.type.compile(dialect=self.engine.dialect)
                try:
                    with self.engine.begin() as conn:
                        conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
                except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                    # A concurrent starter added it first; a real failure shows on first use.
                    continue

    def _add_missing_indexes(self) -> None:
        """Create the indexes a newer release defines on tables an older one created."""
        inspector = sa.inspect(self.engine)
        for table in metadata.sorted_tables:
            present = {index["name"] for index in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name in present:
                    continue
                try:
                    index.create(self.engine, checkfirst=True)
                except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                    continue  # a concurrent starter created it first

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """Run the block in one transaction: committed when it ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Lend a connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    def rows(self, query: sa.Select[Any], conn: Connection | None = None) -> list[sa.RowMapping]:
        """Return the rows of `query` as mappings, in `conn` when given, else on a fresh connection."""
        if conn is not None:
            return list(conn.execute(query).mappings())
        with self.engine.connect() as fresh:
            return list(fresh.execute(query).mappings())

    def incident_rows(self, table: sa.Table, incident_id: str) -> list[sa.RowMapping]:
        """Return the rows of `table` that belong to an incident, oldest first."""
        return self.rows(sa.select(table).where(table.c.incident_id == incident_id).order_by(table.c.id))


def insert_once(conn: Connection, table: sa.Table, **values: Any) -> bool:
    """Insert a row unless its key exists, even if a concurrent twin just wrote it; True if inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any
    if conn.dialect.name == "postgresql":
        insert = postgresql.insert
    elif conn.dialect.name == "sqlite":
        insert = sqlite.insert
    else:
        raise StoreError(f"unsupported database {conn.dialect.name}: use PostgreSQL or SQLite")
    return bool(conn.execute(insert(table).values(**values).on_conflict_do_nothing()).rowcount)


def add_entry(conn: Connection, incident_id: str, kind: str, detail: dict[str, Any]) -> None:
    """Append an entry to an incident's timeline in `conn`'s transaction."""
    conn.execute(events.insert().values(incident_id=incident_id, at=utcnow(), kind=str(kind), detail=detail))
