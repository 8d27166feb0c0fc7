"""The incident store on SQLite and on a real PostgreSQL: idempotent writes, approval votes, concurrency."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.store import (
    DECIDED_STATES,
    Approval,
    IncidentStore,
    NotFound,
    VoteRefused,
    approval_id_for,
    incident_id_for,
    make_engine,
)
from include.store import metadata as store_metadata
from tests.factories import approval_record

REPO = Path(__file__).resolve().parents[2]
PG_DSN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "connect_timeout": 3}
DAG_ID = "incident_response"
ALERT = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api", "severity": None}


# -- backends -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Create a throw-away database on the local PostgreSQL for this session; drop it afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(**PG_DSN)
    except psycopg2.OperationalError as exc:
        reason = (
            f"PostgreSQL is not reachable at {PG_DSN['host']}:{PG_DSN['port']} as user postgres ({exc}). "
            "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    admin.autocommit = True
    name = f"ir_unit_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@{PG_DSN['host']}:{PG_DSN['port']}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incident_store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[IncidentStore]:
    opened = IncidentStore.from_url(store_url)
    yield opened
    opened.engine.dispose()


@pytest.fixture
def run_id() -> str:
    # The PostgreSQL database is shared by the session: every test works on its own run.
    return f"manual__{uuid.uuid4().hex}"


def _incident(store: IncidentStore, run_id: str) -> str:
    return store.open_incident(dag_id=DAG_ID, run_id=run_id, incident_key="k" * 16, alert=dict(ALERT))


def _approval(store: IncidentStore, run_id: str, **overrides) -> Approval:
    return approval_record(store, run_id=run_id, incident_key="k" * 16, **overrides)


def _kinds(store: IncidentStore, incident_id: str) -> list[str]:
    return [e["kind"] for e in store.timeline(incident_id)]


# -- schema and incidents -------------------------------------------------------------------------


def test_create_schema_is_repeatable(store: IncidentStore, store_url: str, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.create_schema()
    store.create_schema()
    again = IncidentStore.from_url(store_url)
    try:
        # Nothing was dropped or recreated.
        assert again.get_incident(incident_id)["run_id"] == run_id
    finally:
        again.engine.dispose()


def test_open_incident_is_idempotent(store: IncidentStore, run_id: str) -> None:
    first = _incident(store, run_id)
    second = store.open_incident(
        dag_id=DAG_ID, run_id=run_id, incident_key="other", alert={**ALERT, "error": "CHANGED"}
    )
    assert first == second == incident_id_for(DAG_ID, run_id)
    incident = store.get_incident(first)
    assert incident["error"] == "PRESSURE_SPIKE_DETECTED"  # the retry did not overwrite it
    assert incident["state"] == "open" and incident["alert"] == ALERT
    assert incident["created_at"].tzinfo is not None
    assert _kinds(store, first) == ["opened"]


def test_unknown_ids_are_not_found(store: IncidentStore) -> None:
    with pytest.raises(NotFound):
        store.get_incident("inc-missing")
    with pytest.raises(NotFound):
        store.get_approval("apr-missing")
    with pytest.raises(NotFound):
        store.approval_state("apr-missing")
    with pytest.raises(NotFound):
        store.cast_vote("apr-missing", identity="alice", channel="web", decision="approve", role="user")


def test_resolve_keeps_the_first_outcome(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.resolve_incident(incident_id, outcome="fixed")
    store.resolve_incident(incident_id, outcome="escalated")
    incident = store.get_incident(incident_id)
    assert (incident["state"], incident["outcome"]) == ("resolved", "fixed")
    assert incident["resolved_at"] >= incident["created_at"]
    assert _kinds(store, incident_id).count("resolved") == 1


def test_set_thread_keeps_the_first_thread(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    assert store.set_thread(incident_id, channel="#oncall", ts="1.1") == ("#oncall", "1.1")
    assert store.set_thread(incident_id, channel="#other", ts="2.2") == ("#oncall", "1.1")


def test_update_incident_refuses_unknown_fields(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.update_incident(incident_id, severity="critical", analysis={"confidence": 0.9})
    with pytest.raises(ValueError):
        store.update_incident(incident_id, state="resolved")
    incident = store.get_incident(incident_id)
    assert (incident["severity"], incident["analysis"], incident["state"]) == (
        "critical",
        {"confidence": 0.9},
        "open",
    )


def test_timeline_is_in_order(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    for i in range(12):
        store.add_event(incident_id, f"step_{i}", {"i": i})
    timeline = store.timeline(incident_id)
    assert [e["kind"] for e in timeline] == ["opened"] + [f"step_{i}" for i in range(12)]
    assert [e["detail"].get("i") for e in timeline[1:]] == list(range(12))
    times = [e["at"] for e in timeline]
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
        _, errors = _race(4, open_store)
        assert errors == []
        incident_id = _incident(stores[0], run_id)
        assert stores[-1].get_incident(incident_id)["run_id"] == run_id
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
        assert mine.get_incident(_incident(mine, run_id))["run_id"] == run_id
    finally:
        mine.engine.dispose()
        theirs.engine.dispose()


# -- approval records -----------------------------------------------------------------------------


def test_create_approval_is_idempotent(store: IncidentStore, run_id: str) -> None:
    first = _approval(store, run_id, quorum=2)
    retry = _approval(store, run_id, quorum=1, approvers=["someone"])
    assert first.id == retry.id == approval_id_for(DAG_ID, run_id, "isolate_pump")
    assert retry.quorum == 2 and retry.approvers is None  # the retry did not overwrite the record
    assert first.state == "pending" and not first.decided
    assert first.expires_at - first.created_at == timedelta(minutes=30)
    assert _kinds(store, first.incident_id).count("approval_requested") == 1
    assert [a.id for a in store.list_approvals(run_id=run_id)] == [first.id]


def test_quorum_one_approve_decides(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    decided = store.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", comment="go", role="user"
    )
    assert decided.state == "approved" and decided.decided
    assert decided.decided_at is not None
    assert decided.deciders == ["alice"]
    assert decided.votes[0].comment == "go" and decided.votes[0].accepted
    assert store.approval_state(record.id) == "approved"
    assert [a.id for a in store.list_approvals(state="approved", run_id=run_id)] == [record.id]
    assert store.list_approvals(state="pending", run_id=run_id) == []
    assert _kinds(store, record.incident_id)[-2:] == ["vote", "approval_approved"]


def test_reject_decides_at_once_even_below_quorum(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=3, approvers=["alice", "slack:U1"])
    store.cast_vote(record.id, identity="alice", channel="web", decision="approve")
    decided = store.cast_vote(record.id, identity="slack:U1", channel="slack", decision="reject")
    assert decided.state == "rejected"
    assert decided.deciders == ["alice", "slack:U1"]


def test_quorum_two_needs_two_distinct_approvers(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    after_one = store.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    assert after_one.state == "pending"
    with pytest.raises(VoteRefused) as info:
        store.cast_vote(record.id, identity="alice", channel="api", decision="approve", role="user")
    assert info.value.code == "conflict"
    assert "alice has already voted" in info.value.reason
    still = store.get_approval(record.id)
    assert still.state == "pending"
    assert [(v.identity, v.accepted) for v in still.votes] == [("alice", True), ("alice", False)]
    done = store.cast_vote(record.id, identity="bob", channel="api", decision="approve", role="user")
    assert done.state == "approved"
    assert done.deciders == ["alice", "bob"]


def test_vote_after_decision_is_refused_and_audited(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    decided = store.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    with pytest.raises(VoteRefused) as info:
        store.cast_vote(record.id, identity="bob", channel="slack", decision="reject", comment="too late?")
    assert info.value.code == "conflict"
    assert "already approved" in info.value.reason
    after = store.get_approval(record.id)
    assert (after.state, after.decided_at) == ("approved", decided.decided_at)
    refused = after.votes[-1]
    assert (refused.identity, refused.decision, refused.accepted, refused.comment) == (
        "bob",
        "reject",
        False,
        "too late?",
    )
    assert "already approved" in refused.refused_because
    assert after.deciders == ["alice"]
    assert _kinds(store, record.incident_id)[-1] == "vote_refused"


@pytest.mark.parametrize("late_by", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_vote_after_expiry_expires_the_record(store: IncidentStore, run_id: str, late_by: timedelta) -> None:
    record = _approval(store, run_id, deadline=timedelta(minutes=5))
    when = record.expires_at + late_by
    with pytest.raises(VoteRefused) as info:
        store.cast_vote(record.id, identity="alice", channel="web", decision="approve", now=when, role="user")
    assert info.value.code == "conflict"
    assert "expired" in info.value.reason
    after = store.get_approval(record.id)
    assert after.state == "expired"
    assert after.decided_at == when
    assert after.deciders == []
    assert [(v.identity, v.accepted) for v in after.votes] == [("alice", False)]
    assert "approval_expired" in _kinds(store, record.incident_id)


def test_vote_just_before_expiry_counts(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, deadline=timedelta(minutes=5))
    when = record.expires_at - timedelta(milliseconds=1)
    decided = store.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", now=when, role="user"
    )
    assert decided.state == "approved"


def test_a_vote_the_policy_forbids_is_refused_and_audited(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, approvers=["bob"])
    with pytest.raises(VoteRefused) as info:
        store.cast_vote(record.id, identity="mallory", channel="web", decision="approve", role="user")
    assert info.value.code == "forbidden"
    assert info.value.reason == "mallory is not an allowed approver for this action"
    after = store.get_approval(record.id)
    assert after.state == "pending" and after.decided_at is None
    assert after.deciders == []
    assert len(after.votes) == 1
    vote = after.votes[0]
    assert (vote.identity, vote.accepted, vote.refused_because) == (
        "mallory",
        False,
        "mallory is not an allowed approver for this action",
    )
    # A forbidden vote does not block that person... nor anyone else: bob still decides.
    assert (
        store.cast_vote(record.id, identity="bob", channel="web", decision="approve", role="user").state
        == "approved"
    )


def test_forbidden_reject_does_not_decide(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    with pytest.raises(VoteRefused):
        store.cast_vote(record.id, identity="viewer", channel="web", decision="reject", role="viewer")
    assert store.approval_state(record.id) == "pending"


def test_invalid_decision_is_refused_before_anything_is_written(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    with pytest.raises(ValueError):
        store.cast_vote(record.id, identity="alice", channel="web", decision="maybe", role="user")
    assert store.get_approval(record.id).votes == ()


@pytest.mark.parametrize("state", ["expired", "cancelled"])
def test_close_approval_decides_a_pending_record(store: IncidentStore, run_id: str, state: str) -> None:
    record = _approval(store, run_id)
    closed = store.close_approval(record.id, state=state)
    assert closed.state == state and closed.decided_at is not None
    with pytest.raises(VoteRefused):
        store.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    assert store.approval_state(record.id) == state


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_close_approval_keeps_an_earlier_decision(store: IncidentStore, run_id: str, decision: str) -> None:
    record = _approval(store, run_id)
    decided = store.cast_vote(record.id, identity="alice", channel="web", decision=decision, role="user")
    for state in ("expired", "cancelled"):
        again = store.close_approval(record.id, state=state)
        assert (again.state, again.decided_at) == (decided.state, decided.decided_at)


def test_close_approval_refuses_other_states(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    with pytest.raises(ValueError):
        store.close_approval(record.id, state="approved")
    assert store.approval_state(record.id) == "pending"


def test_decided_records_never_change(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    store.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    decided = store.cast_vote(record.id, identity="bob", channel="web", decision="reject", role="user")
    assert decided.state == "rejected"
    snapshot = decided.to_json()
    attempts = [
        {"identity": "carol", "decision": "approve"},
        {"identity": "dave", "decision": "approve"},
        {"identity": "alice", "decision": "approve"},
        {"identity": "erin", "decision": "reject", "role": "viewer"},
    ]
    for attempt in attempts:
        with pytest.raises(VoteRefused):
            store.cast_vote(record.id, channel="web", **attempt)
    store.close_approval(record.id, state="expired")
    after = store.get_approval(record.id).to_json()
    # Everything but the audit trail of refused attempts is identical.
    assert {k: v for k, v in after.items() if k != "votes"} == {
        k: v for k, v in snapshot.items() if k != "votes"
    }
    assert after["votes"][: len(snapshot["votes"])] == snapshot["votes"]
    assert [v["accepted"] for v in after["votes"][len(snapshot["votes"]) :]] == [False] * len(attempts)
    assert after["state"] in DECIDED_STATES


def test_to_json_is_json(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, approvers=["alice"], requested_by="bob", forbid_self_approval=True)
    store.cast_vote(record.id, identity="alice", channel="web", decision="approve", comment="ok", role="user")
    data = json.loads(json.dumps(store.get_approval(record.id).to_json()))
    assert data["id"] == record.id and data["dag_run_id"] == run_id
    assert data["state"] == "approved" and data["approvers"] == ["alice"] and data["requested_by"] == "bob"
    assert data["votes"][0]["identity"] == "alice" and data["votes"][0]["accepted"] is True


# -- outbox ---------------------------------------------------------------------------------------


def test_outbox_enqueue_is_idempotent_and_marks_delivery(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{run_id}:page"
    first = store.enqueue_message(
        key=key, incident_id=incident_id, channel="#oncall", text="hi", blocks=[{"a": 1}]
    )
    retry = store.enqueue_message(
        key=key, incident_id=incident_id, channel="#other", text="changed", blocks=None
    )
    assert first["id"] == retry["id"]
    assert (retry["text"], retry["channel"], retry["state"], retry["blocks"]) == (
        "hi",
        "#oncall",
        "pending",
        [{"a": 1}],
    )
    store.enqueue_message(
        key=f"{run_id}:report", incident_id=incident_id, channel="#oncall", text="r", blocks=None
    )
    messages = store.messages(incident_id)
    assert [m["key"] for m in messages] == [key, f"{run_id}:report"]

    store.mark_message(key, state="sent", slack_ts="111.222", thread_ts="100.000")
    sent = store.messages(incident_id)[0]
    assert (sent["state"], sent["slack_ts"], sent["thread_ts"]) == ("sent", "111.222", "100.000")
    assert sent["sent_at"] is not None

    store.mark_message(f"{run_id}:report", state="undelivered", note="no Slack connection")
    undelivered = store.messages(incident_id)[1]
    assert (undelivered["state"], undelivered["note"], undelivered["sent_at"]) == (
        "undelivered",
        "no Slack connection",
        None,
    )


# -- actions --------------------------------------------------------------------------------------


def test_begin_action_claims_once(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{DAG_ID}:{run_id}:isolate_pump"
    claim = dict(key=key, incident_id=incident_id, action="isolate_pump", target="PUMP-07B", dry_run=False)
    row, first = store.begin_action(**claim)
    assert first is True and row["state"] == "started"
    row2, second = store.begin_action(**claim)
    assert second is False and row2["id"] == row["id"] and row2["state"] == "started"

    store.finish_action(key, state="done", result={"mode": "simulated"})
    row3, third = store.begin_action(**claim)
    assert third is False and row3["state"] == "done" and row3["result"] == {"mode": "simulated"}
    assert [a["state"] for a in store.actions_for(incident_id)] == ["done"]
    assert _kinds(store, incident_id)[-1] == "action_done"


def test_failed_action_can_be_claimed_again(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{DAG_ID}:{run_id}:open_bypass_valve"
    claim = dict(
        key=key, incident_id=incident_id, action="open_bypass_valve", target="PUMP-07B", dry_run=True
    )
    row, first = store.begin_action(**claim)
    store.finish_action(key, state="failed", result={"error": "Timeout"})
    assert _kinds(store, incident_id)[-1] == "action_failed"
    again, claimed = store.begin_action(**claim)
    assert claimed is True and again["id"] == row["id"] and again["state"] == "started"
    _, once_more = store.begin_action(**claim)
    assert once_more is False
    assert len(store.actions_for(incident_id)) == 1


def test_action_timeline_drops_huge_results(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{run_id}:reduce_load"
    store.begin_action(
        key=key, incident_id=incident_id, action="reduce_load", target="PUMP-07B", dry_run=False
    )
    store.finish_action(key, state="done", result={"mode": "live", "dump": "x" * 5000})
    detail = store.timeline(incident_id)[-1]["detail"]
    assert detail == {"action": "reduce_load", "mode": "live"}
    assert store.actions_for(incident_id)[0]["result"]["dump"] == "x" * 5000


# -- concurrency ----------------------------------------------------------------------------------


def _race(n: int, work) -> tuple[list, list[BaseException]]:
    """Run `work(i)` in `n` threads released at the same moment; return results and exceptions."""
    barrier = threading.Barrier(n)
    results: list = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            value = work(i)
        except BaseException as exc:  # collected and asserted on by the test
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a voter hung"
    return results, errors


def test_concurrent_distinct_approvers_decide_once(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    results, errors = _race(
        8,
        lambda i: store.cast_vote(
            record.id, identity=f"voter-{i}", channel="web", decision="approve", role="user"
        ),
    )
    assert all(isinstance(e, VoteRefused) for e in errors), errors
    assert all(e.code == "conflict" for e in errors)
    final = store.get_approval(record.id)
    assert final.state == "approved"
    # Exactly the quorum counted: the first two votes decide, the other six find it decided.
    assert len(final.deciders) == 2 and len(set(final.deciders)) == 2
    assert len(results) == 2 and len(errors) == 6
    assert len(final.votes) == 8
    assert _kinds(store, record.incident_id).count("approval_approved") == 1
    assert _kinds(store, record.incident_id).count("vote") == 2


def test_concurrent_votes_by_one_person_never_reach_quorum(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    results, errors = _race(
        8,
        lambda _: store.cast_vote(
            record.id, identity="alice", channel="web", decision="approve", role="user"
        ),
    )
    # Past the cap of kept refusals, a repeat is refused without being kept.
    assert all(isinstance(e, VoteRefused) and e.code in ("conflict", "too_many") for e in errors), errors
    final = store.get_approval(record.id)
    assert final.state == "pending"
    assert final.deciders == ["alice"]
    assert len(results) == 1 and len(errors) == 7


def test_concurrent_approve_and_reject_decide_exactly_once(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=1)
    results, errors = _race(
        8,
        lambda i: store.cast_vote(
            record.id,
            identity=f"voter-{i}",
            channel="web",
            decision="approve" if i % 2 else "reject",
            role="user",
        ),
    )
    assert all(isinstance(e, VoteRefused) for e in errors), errors
    final = store.get_approval(record.id)
    assert len(results) == 1 and len(final.deciders) == 1
    winner = next(v for v in final.votes if v.accepted)
    assert final.state == {"approve": "approved", "reject": "rejected"}[winner.decision]
    decisions = [
        k
        for k in _kinds(store, record.incident_id)
        if k.startswith("approval_") and k != "approval_requested"
    ]
    assert decisions == [f"approval_{final.state}"]


def test_concurrent_close_and_vote_agree(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)

    def work(i: int):
        if i % 2:
            return store.close_approval(record.id, state="cancelled").state
        return store.cast_vote(
            record.id, identity=f"voter-{i}", channel="web", decision="approve", role="user"
        ).state

    results, errors = _race(6, work)
    assert all(isinstance(e, VoteRefused) for e in errors), errors
    final = store.get_approval(record.id)
    assert final.state in ("approved", "cancelled")
    # Every close call reports the one final decision, whoever won.
    assert set(results) == {final.state}
    assert len(final.deciders) == (1 if final.state == "approved" else 0)


def _before_first_insert_into(store: IncidentStore, table: str, competitor) -> list[bool]:
    """Run `competitor()` (on another connection) just before `store` first inserts into `table`.

    This reproduces, deterministically, two workers racing: the other one commits its row between
    this one's "does it exist?" check and its INSERT.
    """
    fired: list[bool] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def competing_write(conn, cursor, statement, parameters, context, executemany):
        if not fired and statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            fired.append(True)
            competitor()

    return fired


RACES = {
    "begin_action": (
        "ir_actions",
        lambda s, run_id, inc: s.begin_action(
            key=f"{run_id}:isolate_pump",
            incident_id=inc,
            action="isolate_pump",
            target="PUMP-07B",
            dry_run=False,
        ),
    ),
    "open_incident": (
        "ir_incidents",
        lambda s, run_id, inc: s.open_incident(
            dag_id=DAG_ID, run_id=run_id + "-2", incident_key="k", alert=ALERT
        ),
    ),
    "create_approval": (
        "ir_approvals",
        lambda s, run_id, inc: s.create_approval(
            incident_id=inc,
            dag_id=DAG_ID,
            run_id=run_id,
            action="isolate_pump",
            risk="high",
            reasons=[],
            quorum=1,
            approvers=None,
            deadline=timedelta(minutes=5),
        ),
    ),
    "enqueue_message": (
        "ir_outbox",
        lambda s, run_id, inc: s.enqueue_message(
            key=f"{run_id}:page", incident_id=inc, channel="#oncall", text="page", blocks=None
        ),
    ),
}


@pytest.mark.parametrize("operation", sorted(RACES))
def test_idempotent_writes_survive_a_concurrent_twin(
    store_url: str, store: IncidentStore, run_id: str, operation: str
) -> None:
    table, call = RACES[operation]
    incident_id = _incident(store, run_id)
    twin = IncidentStore.from_url(store_url)
    try:
        fired = _before_first_insert_into(store, table, lambda: call(twin, run_id, incident_id))
        mine = call(store, run_id, incident_id)
        assert fired == [True]
        theirs = call(twin, run_id, incident_id)
        # Both workers end with the same row, and there is only one.
        if operation == "begin_action":
            assert mine[1] is False and mine[0]["id"] == theirs[0]["id"]
        elif operation == "create_approval":
            assert mine.id == theirs.id
        elif operation == "enqueue_message":
            assert mine["id"] == theirs["id"]
        else:
            assert mine == theirs
    finally:
        twin.engine.dispose()


VOTER_SCRIPT = """
import sys
from include.store import IncidentStore, VoteRefused, make_engine
url, approval_id, identity = sys.argv[1:4]
store = IncidentStore(make_engine(url))
print("ready", flush=True)
sys.stdin.readline()  # the start signal: every voter is imported and waiting
try:
    vote = store.cast_vote(approval_id, identity=identity, channel="api", decision="approve", role="user")
    print(vote.state)
except VoteRefused as exc:
    print("refused:" + exc.code)
"""


def test_sqlite_processes_voting_at_once(tmp_path: Path, run_id: str) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = IncidentStore.from_url(url)
    record = _approval(store, run_id, quorum=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", VOTER_SCRIPT, url, record.id, f"proc-{i}"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        # Release them together once all have started (a crashed child gives '' here, not a hang).
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 3
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    answers = sorted(out.strip() for out, _ in outputs)
    final = store.get_approval(record.id)
    assert final.state == "approved"
    assert len(final.deciders) == 2 and len(set(final.deciders)) == 2
    # Whatever the order: one counted vote left it pending, one decided it, one found it decided.
    assert answers == ["approved", "pending", "refused:conflict"]


# -- people ---------------------------------------------------------------------------------------------

PEOPLE = {"alice": "alice", "slack:U0ALICE": "alice", "bob": "bob"}


def test_one_person_through_two_channels_counts_once(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2, approvers=["alice", "slack:U0ALICE", "bob"], people=PEOPLE)
    store.cast_vote(record.id, identity="slack:U0ALICE", channel="slack", decision="approve")
    with pytest.raises(VoteRefused) as info:
        store.cast_vote(record.id, identity="alice", channel="web", decision="approve")
    assert info.value.code == "conflict" and info.value.reason == "alice has already voted"
    after = store.get_approval(record.id)
    assert after.state == "pending" and after.approval_count == 1
    assert [(v.identity, v.accepted) for v in after.votes] == [("slack:U0ALICE", True), ("alice", False)]
    assert store.cast_vote(record.id, identity="bob", channel="api", decision="approve").state == "approved"


def test_refused_attempts_are_kept_up_to_a_cap_per_person(store: IncidentStore, run_id: str) -> None:
    from include.approval_policy import MAX_REFUSED_ATTEMPTS

    record = _approval(store, run_id, approvers=["bob"])
    codes = []
    for _ in range(MAX_REFUSED_ATTEMPTS + 3):
        with pytest.raises(VoteRefused) as info:
            store.cast_vote(
                record.id, identity="mallory", channel="web", decision="approve", comment="x" * 2000
            )
        codes.append(info.value.code)
    assert codes == ["forbidden"] * MAX_REFUSED_ATTEMPTS + ["too_many"] * 3
    assert len(store.get_approval(record.id).votes) == MAX_REFUSED_ATTEMPTS


def test_records_of_an_older_schema_gain_the_new_columns(tmp_path: Path, run_id: str) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = IncidentStore.from_url(url)
    with old.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE ir_approvals DROP COLUMN people"))
    again = IncidentStore.from_url(url)
    record = _approval(again, run_id, approvers=["alice"], people={"alice": "alice"})
    assert record.people == {"alice": "alice"}


# -- the incident lifecycle ------------------------------------------------------------------------------


def test_acknowledge_then_resolve_records_who_and_when(store: IncidentStore, run_id: str) -> None:
    incident_id = store.open_incident(
        dag_id=DAG_ID,
        run_id=run_id,
        incident_key="a" * 16,
        alert={**ALERT, "started_at": "2026-01-01T00:00:00+00:00"},
    )
    assert store.acknowledge_incident(incident_id, by="slack:U1") is True
    assert store.acknowledge_incident(incident_id, by="alice") is False  # the first acknowledgement stays
    assert store.resolve_incident(incident_id, outcome="resolved_by_hand", by="alice") is True
    assert store.acknowledge_incident(incident_id, by="bob") is False
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


def test_an_acknowledged_incident_still_absorbs_repeats(store: IncidentStore, run_id: str) -> None:
    key = uuid.uuid4().hex[:16]
    first, _ = store.open_incident_unless_duplicate(
        dag_id=DAG_ID, run_id=run_id, incident_key=key, alert=dict(ALERT)
    )
    store.acknowledge_incident(first, by="alice")
    _, duplicate_of = store.open_incident_unless_duplicate(
        dag_id=DAG_ID, run_id=run_id + "-again", incident_key=key, alert=dict(ALERT)
    )
    assert duplicate_of == first
