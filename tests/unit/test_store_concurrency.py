"""The incident store under concurrent writers, threads and processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.errors import Refused
from include.store import (
    IncidentStore,
)
from tests.unit.store_helpers import ALERT, DAG_ID, REPO, race
from tests.unit.store_helpers import approval as _approval
from tests.unit.store_helpers import incident as _incident
from tests.unit.store_helpers import kinds as _kinds

# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_distinct_approvers_decide_once(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    results, errors = race(
        8,
        lambda i: store.approvals.cast_vote(
            record.id, identity=f"voter-{i}", channel="web", decision="approve", role="user"
        ),
    )
    assert all(isinstance(e, Refused) for e in errors), errors
    assert all(e.code == "conflict" for e in errors)
    final = store.approvals.get(record.id)
    assert final.state == "approved"
    # Exactly the quorum counted: the first two votes decide, the other six find it decided.
    assert len(final.deciders) == 2 and len(set(final.deciders)) == 2
    assert len(results) == 2 and len(errors) == 6
    assert len(final.votes) == 8
    assert _kinds(store, record.incident_id).count("approval_approved") == 1
    assert _kinds(store, record.incident_id).count("vote") == 2


def test_concurrent_votes_by_one_person_never_reach_quorum(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    results, errors = race(
        8,
        lambda _: store.approvals.cast_vote(
            record.id, identity="alice", channel="web", decision="approve", role="user"
        ),
    )
    # Past the cap of kept refusals, a repeat is refused without being kept.
    assert all(isinstance(e, Refused) and e.code in ("conflict", "too_many") for e in errors), errors
    final = store.approvals.get(record.id)
    assert final.state == "pending"
    assert final.deciders == ["alice"]
    assert len(results) == 1 and len(errors) == 7


def test_concurrent_approve_and_reject_decide_exactly_once(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=1)
    results, errors = race(
        8,
        lambda i: store.approvals.cast_vote(
            record.id,
            identity=f"voter-{i}",
            channel="web",
            decision="approve" if i % 2 else "reject",
            role="user",
        ),
    )
    assert all(isinstance(e, Refused) for e in errors), errors
    final = store.approvals.get(record.id)
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
            return store.approvals.close(record.id, state="cancelled").state
        return store.approvals.cast_vote(
            record.id, identity=f"voter-{i}", channel="web", decision="approve", role="user"
        ).state

    results, errors = race(6, work)
    assert all(isinstance(e, Refused) for e in errors), errors
    final = store.approvals.get(record.id)
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
        lambda s, run_id, inc: s.actions.begin(
            key=f"{run_id}:isolate_pump",
            incident_id=inc,
            action="isolate_pump",
            target="PUMP-07B",
            dry_run=False,
        ),
    ),
    "open_incident": (
        "ir_incidents",
        lambda s, run_id, inc: s.incidents.open(
            dag_id=DAG_ID, run_id=run_id + "-2", incident_key="k", alert=ALERT
        ),
    ),
    "create_approval": (
        "ir_approvals",
        lambda s, run_id, inc: s.approvals.create(
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
        lambda s, run_id, inc: s.outbox.enqueue(
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
from include.errors import Refused
from include.store import IncidentStore, make_engine
url, approval_id, identity = sys.argv[1:4]
store = IncidentStore(make_engine(url))
print("ready", flush=True)
sys.stdin.readline()  # the start signal: every voter is imported and waiting
try:
    vote = store.approvals.cast_vote(
        approval_id, identity=identity, channel="api", decision="approve", role="user"
    )
    print(vote.state)
except Refused as exc:
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
    final = store.approvals.get(record.id)
    assert final.state == "approved"
    assert len(final.deciders) == 2 and len(set(final.deciders)) == 2
    # Whatever the order: one counted vote left it pending, one decided it, one found it decided.
    assert answers == ["approved", "pending", "refused:conflict"]


def test_a_forked_child_opens_its_own_connections(store: IncidentStore, run_id: str) -> None:
    # The parent holds pooled connections; a forked task process must not share their file handles
    # and sockets (two processes on one SQLite handle, or one PostgreSQL socket, corrupt each other).
    incident_id = _incident(store, run_id)
    inherited = store.engine.pool.checkedin()
    assert inherited >= 1
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            fresh = store.engine.pool.checkedin() == 0
            store.incidents.add_event(incident_id, "from_child", {})
            os.write(write, b"ok" if fresh else b"inherited")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.read(read, 64) == b"ok" and status == 0
    os.close(read)
    # The parent's connections still work, and see the child's write.
    assert "from_child" in _kinds(store, incident_id)
