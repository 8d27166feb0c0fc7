"""ApprovalTrigger: rebuilt from its serialized form, and one event for each way a record can end."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from airflow.triggers.base import TaskSuccessEvent

from incident_ops.hooks.incident_store import get_store
from incident_ops.triggers.approval import ApprovalTrigger
from incident_ops.triggers.approval_watch import watcher_for
from include.store import IncidentStore
from tests.factories import approval_record


@pytest.fixture
def store(incident_store_url) -> IncidentStore:
    return get_store()


def _record(store: IncidentStore, *, deadline: timedelta = timedelta(minutes=30), run_id: str = "run-1"):
    return approval_record(store, run_id=run_id, deadline=deadline, incident_key="k")


def _fire(trigger: ApprovalTrigger, timeout: float = 20):
    """Run the trigger until its first event and return that event."""

    async def first():
        async for event in trigger.run():
            return event

    return asyncio.run(asyncio.wait_for(first(), timeout))


def _first_event(trigger: ApprovalTrigger, timeout: float = 20):
    """Return the payload of a resuming event (expiry, reminder, error)."""
    event = _fire(trigger, timeout)
    assert not isinstance(event, TaskSuccessEvent), event
    return event.payload


def _decision(trigger: ApprovalTrigger) -> dict:
    """Return the outcome a decision event hands to approval_decision, as the task's XCom."""
    event = _fire(trigger)
    assert isinstance(event, TaskSuccessEvent), event
    assert set(event.xcoms) == {"return_value"}
    return event.xcoms["return_value"]


def test_serialization_round_trip_keeps_only_ids():
    trigger = ApprovalTrigger(approval_id="apr-1", expires_at="2026-01-01T00:00:00+00:00", poll_interval=0.5)
    classpath, kwargs = trigger.serialize()

    assert classpath == "incident_ops.triggers.approval.ApprovalTrigger"
    assert kwargs == {
        "approval_id": "apr-1",
        "expires_at": "2026-01-01T00:00:00+00:00",
        "store_conn_id": "incident_store",
        "poll_interval": 0.5,
        "remind_at": None,
    }
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_decision_made_before_the_trigger_starts_is_seen_at_once(store):
    record = _record(store)
    store.approvals.cast_vote(record.id, identity="admin", channel="web", decision="approve", role="admin")

    started = time.monotonic()
    outcome = _decision(ApprovalTrigger(approval_id=record.id, expires_at=record.expires_at.isoformat()))

    assert outcome == {"approval_id": record.id, "state": "approved", "decided_by": ["admin"]}
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("decision", "state"), [("approve", "approved"), ("reject", "rejected")])
def test_decision_while_waiting_fires_one_event(store, decision, state):
    record = _record(store)
    voter = threading.Timer(
        0.5,
        lambda: store.approvals.cast_vote(
            record.id, identity="admin", channel="web", decision=decision, role="admin"
        ),
    )
    voter.start()
    try:
        outcome = _decision(
            ApprovalTrigger(
                approval_id=record.id, expires_at=record.expires_at.isoformat(), poll_interval=0.1
            )
        )
    finally:
        voter.join()
    assert outcome == {"approval_id": record.id, "state": state, "decided_by": ["admin"]}


def test_cancelled_record_fires_cancelled(store):
    record = _record(store)
    store.approvals.close(record.id, state="cancelled")
    outcome = _decision(ApprovalTrigger(approval_id=record.id, expires_at=record.expires_at.isoformat()))
    assert outcome == {"approval_id": record.id, "state": "cancelled", "decided_by": []}


def test_deadline_fires_expired_without_writing(store):
    record = _record(store, deadline=timedelta(seconds=1))
    event = _first_event(
        ApprovalTrigger(approval_id=record.id, expires_at=record.expires_at.isoformat(), poll_interval=0.2)
    )
    assert event == {"approval_id": record.id, "state": "expired"}
    # The trigger may run twice (triggerer restart): recording expiry is the sensor's job.
    assert store.approvals.get(record.id).state == "pending"


def test_unknown_record_fires_an_error_event(store):
    expires = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    event = _first_event(ApprovalTrigger(approval_id="apr-missing", expires_at=expires))
    assert event == {"approval_id": "apr-missing", "state": "error", "reason": "not_found"}


def test_half_time_fires_a_reminder_while_pending(store):
    record = _record(store, deadline=timedelta(minutes=5))
    remind_at = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
    trigger = ApprovalTrigger(
        approval_id=record.id,
        expires_at=record.expires_at.isoformat(),
        poll_interval=0.1,
        remind_at=remind_at,
    )
    assert trigger.serialize()[1]["remind_at"] == remind_at
    assert _first_event(trigger) == {"approval_id": record.id, "state": "reminder"}


# -- many waiting approvals share one read ------------------------------------------------------------


def _count_state_reads(store: IncidentStore) -> list[str]:
    """Record every SELECT of approval states the store's engine runs from now on."""
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "approvals.state" in statement:
            statements.append(statement)

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", seen)
    return statements


def test_many_waiting_triggers_cost_one_query_per_interval_and_each_sees_its_decision(store):
    count, interval, waited = 200, 0.2, 1.5
    records = [_record(store, run_id=f"run-many-{i}") for i in range(count)]
    reads = _count_state_reads(store)

    async def scenario():
        triggers = [
            ApprovalTrigger(approval_id=r.id, expires_at=r.expires_at.isoformat(), poll_interval=interval)
            for r in records
        ]
        tasks = [asyncio.create_task(anext(t.run())) for t in triggers]
        await asyncio.sleep(waited)
        assert not any(task.done() for task in tasks)
        reads_while_waiting = len(reads)
        # Half approved, half rejected, written straight into the store (as another API server would).
        for i, record in enumerate(records):
            decision = "approve" if i % 2 == 0 else "reject"
            await asyncio.to_thread(
                store.approvals.cast_vote,
                record.id,
                identity="admin",
                channel="web",
                decision=decision,
                role="admin",
            )
        events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        return reads_while_waiting, events

    reads_while_waiting, events = asyncio.run(scenario())

    # One read per interval for all 200 (a couple more for timer slack), not 200 per interval.
    assert 1 <= reads_while_waiting <= waited / interval + 3, reads_while_waiting
    for i, (record, event) in enumerate(zip(records, events, strict=True)):
        assert isinstance(event, TaskSuccessEvent), event
        state = "approved" if i % 2 == 0 else "rejected"
        assert event.xcoms["return_value"] == {
            "approval_id": record.id,
            "state": state,
            "decided_by": ["admin"],
        }


def test_a_trigger_that_stops_waiting_leaves_the_others_watched(store):
    kept, dropped = _record(store, run_id="run-kept"), _record(store, run_id="run-dropped")

    async def scenario():
        watcher_task = asyncio.create_task(
            anext(
                ApprovalTrigger(
                    approval_id=kept.id, expires_at=kept.expires_at.isoformat(), poll_interval=0.1
                ).run()
            )
        )
        cancelled = asyncio.create_task(
            anext(
                ApprovalTrigger(
                    approval_id=dropped.id, expires_at=dropped.expires_at.isoformat(), poll_interval=0.1
                ).run()
            )
        )
        await asyncio.sleep(0.3)
        # The triggerer cancels a trigger whose task the API server already ended.
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        watcher = watcher_for(store)
        assert watcher.watched == 1
        await asyncio.to_thread(
            store.approvals.cast_vote,
            kept.id,
            identity="admin",
            channel="web",
            decision="approve",
            role="admin",
        )
        event = await asyncio.wait_for(watcher_task, 10)
        assert watcher.watched == 0
        return event

    event = asyncio.run(scenario())
    assert event.xcoms["return_value"]["state"] == "approved"


def test_a_failed_read_reaches_every_waiting_trigger(store, monkeypatch):
    records = [_record(store, run_id=f"run-broken-{i}") for i in range(3)]

    def broken(ids):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("store unreachable"))

    monkeypatch.setattr(store.approvals, "states", broken)

    async def scenario():
        triggers = [ApprovalTrigger(approval_id=r.id, expires_at=r.expires_at.isoformat()) for r in records]
        return await asyncio.gather(*(anext(t.run()) for t in triggers), return_exceptions=True)

    results = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [type(r) for r in results] == [sqlalchemy.exc.OperationalError] * 3


def test_batch_read_of_states_leaves_unknown_ids_out(store):
    pending, decided = _record(store, run_id="run-a"), _record(store, run_id="run-b")
    store.approvals.close(decided.id, state="cancelled")
    assert store.approvals.states([pending.id, decided.id, "apr-missing", pending.id]) == {
        pending.id: "pending",
        decided.id: "cancelled",
    }


def test_store_objects_of_one_database_share_one_watcher(store, incident_store_url):
    # Triggers that start together may each build a store object for the same database.
    twin = IncidentStore.from_url(incident_store_url)

    async def watchers():
        return watcher_for(store), watcher_for(twin)

    first, second = asyncio.run(watchers())
    assert first is second
