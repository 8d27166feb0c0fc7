"""The incident store on SQLite and on a real PostgreSQL: schema, incidents, their timeline and lifecycle."""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.errors import Refused
from include.store import (
    IncidentStore,
    NotFound,
    incident_id_for,
    make_engine,
)
from include.store import metadata as store_metadata
from tests.unit.store_helpers import ALERT, DAG_ID, race
from tests.unit.store_helpers import incident as _incident
from tests.unit.store_helpers import kinds as _kinds

# -- schema and incidents -------------------------------------------------------------------------


def test_create_schema_is_repeatable(store: IncidentStore, store_url: str, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.create_schema()
    store.create_schema()
    again = IncidentStore.from_url(store_url)
    try:
        # Nothing was dropped or recreated.
        assert again.incidents.get(incident_id).run_id == run_id
    finally:
        again.engine.dispose()


def test_open_incident_is_idempotent(store: IncidentStore, run_id: str) -> None:
    first = _incident(store, run_id)
    second = store.incidents.open(
        dag_id=DAG_ID, run_id=run_id, incident_key="other", alert={**ALERT, "error": "CHANGED"}
    )
    assert first == second == incident_id_for(DAG_ID, run_id)
    incident = store.incidents.get(first)
    assert incident.error == "PRESSURE_SPIKE_DETECTED"  # the retry did not overwrite it
    assert incident.state == "open" and incident.alert == ALERT
    assert incident.created_at.tzinfo is not None
    assert _kinds(store, first) == ["opened"]


def test_unknown_ids_are_not_found(store: IncidentStore) -> None:
    with pytest.raises(NotFound):
        store.incidents.get("inc-missing")
    with pytest.raises(NotFound):
        store.approvals.get("apr-missing")
    with pytest.raises(NotFound):
        store.approvals.state("apr-missing")
    with pytest.raises(NotFound):
        store.approvals.cast_vote(
            "apr-missing", identity="alice", channel="web", decision="approve", role="user"
        )


def test_resolve_keeps_the_first_outcome(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.incidents.resolve(incident_id, outcome="fixed")
    store.incidents.resolve(incident_id, outcome="escalated")
    incident = store.incidents.get(incident_id)
    assert (incident.state, incident.outcome) == ("resolved", "fixed")
    assert incident.resolved_at >= incident.created_at
    assert _kinds(store, incident_id).count("resolved") == 1


def test_set_thread_keeps_the_first_thread(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    assert store.incidents.set_thread(incident_id, channel="#oncall", ts="1.1") == ("#oncall", "1.1")
    assert store.incidents.set_thread(incident_id, channel="#other", ts="2.2") == ("#oncall", "1.1")


def test_update_incident_refuses_unknown_fields(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.incidents.update(incident_id, severity="critical", analysis={"confidence": 0.9})
    with pytest.raises(ValueError):
        store.incidents.update(incident_id, state="resolved")
    incident = store.incidents.get(incident_id)
    assert (incident.severity, incident.analysis, incident.state) == (
        "critical",
        {"confidence": 0.9},
        "open",
    )


def test_timeline_is_in_order(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    for i in range(12):
        store.incidents.add_event(incident_id, f"step_{i}", {"i": i})
    timeline = store.incidents.timeline(incident_id)
    assert [e.kind for e in timeline] == ["opened"] + [f"step_{i}" for i in range(12)]
    assert [e.detail.get("i") for e in timeline[1:]] == list(range(12))
    times = [e.at for e in timeline]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)
    # Another incident's events never leak in.
    other = _incident(store, run_id + "-other")
    assert _kinds(store, other) == ["opened"]


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> str:
    """Return the URL of a PostgreSQL store with no tables yet (a fresh schema in the session database)."""
    schema = f"empty_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


def test_postgres_concurrent_first_start_creates_schema(empty_postgres_url: str, run_id: str) -> None:
    # Several workers (scheduler, triggerer, API server) may open a brand-new store at the same time.
    stores: list[IncidentStore] = []
    lock = threading.Lock()

    def open_store(_: int) -> None:
        opened = IncidentStore.from_url(empty_postgres_url)
        with lock:
            stores.append(opened)

    try:
        _, errors = race(4, open_store)
        assert errors == []
        incident_id = _incident(stores[0], run_id)
        assert stores[-1].incidents.get(incident_id).run_id == run_id
        # The tables really were created in the fresh schema, not found in another one.
        with stores[0].engine.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
            tables = conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalars()
            assert schema.startswith("empty_")
            assert {"ir_incidents", "ir_approvals", "ir_votes", "ir_outbox", "ir_actions"} <= set(tables)
    finally:
        for opened in stores:
            opened.engine.dispose()


def test_sqlite_schema_creation_tolerates_a_concurrent_creator(tmp_path: Path, run_id: str) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    mine, theirs = IncidentStore(make_engine(url)), IncidentStore(make_engine(url))

    # Deterministic version of the race seen with threads: the other worker creates each table
    # just before this one does (on SQLite, its create_all commits table by table too).
    @sa.event.listens_for(mine.engine, "before_cursor_execute")
    def other_worker_first(conn, cursor, statement, parameters, context, executemany):
        created = re.match(r"\s*CREATE TABLE (\w+)", statement)
        if created:
            store_metadata.tables[created.group(1)].create(theirs.engine, checkfirst=True)

    try:
        mine.create_schema()
        assert mine.incidents.get(_incident(mine, run_id)).run_id == run_id
    finally:
        mine.engine.dispose()
        theirs.engine.dispose()


# -- the incident lifecycle ------------------------------------------------------------------------------


def test_acknowledge_then_resolve_records_who_and_when(store: IncidentStore, run_id: str) -> None:
    incident_id = store.incidents.open(
        dag_id=DAG_ID,
        run_id=run_id,
        incident_key="a" * 16,
        alert={**ALERT, "started_at": "2026-01-01T00:00:00+00:00"},
    )
    assert store.incidents.acknowledge(incident_id, by="slack:U1") is True
    assert store.incidents.acknowledge(incident_id, by="alice") is False  # the first acknowledgement stays
    assert store.incidents.resolve(incident_id, outcome="resolved_by_hand", by="alice") is True
    assert store.incidents.acknowledge(incident_id, by="bob") is False
    document = store.incident_document(incident_id)
    assert (document["state"], document["acknowledged_by"], document["resolved_by"]) == (
        "resolved",
        "slack:U1",
        "alice",
    )
    assert document["started_at"] == "2026-01-01T00:00:00+00:00"
    # Measured from the alert's start, not from when it reached us.
    assert (
        document["time_to_acknowledge_seconds"] > 3600
        and document["time_to_resolve_seconds"] >= (document["time_to_acknowledge_seconds"])
    )
    assert [e["kind"] for e in document["timeline"]] == ["opened", "acknowledged", "resolved"]
    assert document["timeline"][1]["actor"] == "slack:U1"


def test_the_first_counted_vote_acknowledges_the_incident(store: IncidentStore, run_id: str) -> None:
    from tests.unit.store_helpers import approval as _approval

    record = _approval(store, run_id, quorum=2, approvers=["alice", "bob"])
    acknowledged_before = store.stats.time_to_acknowledge().count  # the PostgreSQL store is shared
    with pytest.raises(Refused):
        store.approvals.cast_vote(
            record.id, identity="mallory", channel="web", decision="approve", role="user"
        )
    assert store.incidents.get(record.incident_id).state == "open"  # a refused vote answers nothing

    store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    store.approvals.cast_vote(record.id, identity="bob", channel="web", decision="approve", role="user")

    incident = store.incidents.get(record.incident_id)
    assert (incident.state, incident.acknowledged_by) == ("acknowledged", "alice")
    assert _kinds(store, record.incident_id).count("acknowledged") == 1
    assert store.stats.time_to_acknowledge().count == acknowledged_before + 1  # MTTA counts it, once


def test_an_acknowledged_incident_still_absorbs_repeats(store: IncidentStore, run_id: str) -> None:
    key = uuid.uuid4().hex[:16]
    first, _ = store.intake.open_incident_unless_duplicate(
        dag_id=DAG_ID, run_id=run_id, incident_key=key, alert=dict(ALERT)
    )
    store.incidents.acknowledge(first, by="alice")
    _, duplicate_of = store.intake.open_incident_unless_duplicate(
        dag_id=DAG_ID, run_id=run_id + "-again", incident_key=key, alert=dict(ALERT)
    )
    assert duplicate_of == first
