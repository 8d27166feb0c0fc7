"""ApprovalTrigger: rebuilt from its serialized form, and one event for each way a record can end."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from airflow.triggers.base import TaskSuccessEvent

from incident_ops.hooks.incident_store import get_store
from incident_ops.triggers.approval import ApprovalTrigger
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
    store.cast_vote(record.id, identity="admin", channel="web", decision="approve", role="admin")

    started = time.monotonic()
    outcome = _decision(ApprovalTrigger(approval_id=record.id, expires_at=record.expires_at.isoformat()))

    assert outcome == {"approval_id": record.id, "state": "approved", "decided_by": ["admin"]}
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("decision", "state"), [("approve", "approved"), ("reject", "rejected")])
def test_decision_while_waiting_fires_one_event(store, decision, state):
    record = _record(store)
    voter = threading.Timer(
        0.5,
        lambda: store.cast_vote(record.id, identity="admin", channel="web", decision=decision, role="admin"),
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
    store.close_approval(record.id, state="cancelled")
    outcome = _decision(ApprovalTrigger(approval_id=record.id, expires_at=record.expires_at.isoformat()))
    assert outcome == {"approval_id": record.id, "state": "cancelled", "decided_by": []}


def test_deadline_fires_expired_without_writing(store):
    record = _record(store, deadline=timedelta(seconds=1))
    event = _first_event(
        ApprovalTrigger(approval_id=record.id, expires_at=record.expires_at.isoformat(), poll_interval=0.2)
    )
    assert event == {"approval_id": record.id, "state": "expired"}
    # The trigger may run twice (triggerer restart): recording expiry is the sensor's job.
    assert store.get_approval(record.id).state == "pending"


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
