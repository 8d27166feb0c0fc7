"""ApprovalSensor: returns at once when decided, defers while pending, and records expiry as a decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk.bases.operator import TriggerFailureReason
from airflow.sdk.exceptions import TaskDeferred

from incident_ops.hooks.incident_store import get_store
from incident_ops.sensors.approval import ApprovalError, ApprovalSensor
from incident_ops.triggers.approval import ApprovalTrigger
from tests.factories import approval_record


@pytest.fixture
def store(incident_store_url):
    return get_store()


@pytest.fixture
def record(store):
    return approval_record(store, run_id="r", incident_key="k")


def _sensor(approval_id: str) -> ApprovalSensor:
    return ApprovalSensor(task_id="wait_for_approval", approval_id=approval_id, poll_interval=0.5)


def test_pending_record_defers_with_the_deadline_as_timeout(record):
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(record.id).execute(context={})

    trigger = deferred.value.trigger
    assert isinstance(trigger, ApprovalTrigger)
    assert trigger.serialize()[1]["approval_id"] == record.id
    assert deferred.value.method_name == "execute_complete"
    # The sensor times out at the record's deadline (plus a minute's grace), not Airflow's default week.
    assert timedelta(minutes=30) < deferred.value.timeout <= timedelta(minutes=31)


def test_decision_before_the_sensor_starts_is_not_lost(store, record):
    store.approvals.cast_vote(record.id, identity="admin", channel="api", decision="approve", role="admin")
    assert _sensor(record.id).execute(context={}) == {
        "approval_id": record.id,
        "state": "approved",
        "decided_by": ["admin"],
    }


def test_expired_event_records_the_expiry(store, record):
    outcome = _sensor(record.id).execute_complete(
        context={}, event={"approval_id": record.id, "state": "expired"}
    )
    assert outcome["state"] == "expired"
    assert store.approvals.get(record.id).state == "expired"


def test_vote_just_before_expiry_wins(store, record):
    store.approvals.cast_vote(record.id, identity="admin", channel="api", decision="reject", role="admin")
    outcome = _sensor(record.id).execute_complete(
        context={}, event={"approval_id": record.id, "state": "expired"}
    )
    assert outcome["state"] == "rejected"


def test_airflow_deferral_timeout_is_an_expiry_not_a_failure(store, record):
    sensor = _sensor(record.id)
    outcome = sensor.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, context={})
    assert outcome["state"] == "expired"
    assert store.approvals.get(record.id).state == "expired"


def test_other_trigger_failures_still_fail(record):
    from airflow.sdk.exceptions import TaskDeferralError

    with pytest.raises(TaskDeferralError):
        _sensor(record.id).resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_FAILURE}, context={}
        )


def test_malformed_event_fails_clearly(record):
    with pytest.raises(ApprovalError, match="unexpected event"):
        _sensor(record.id).execute_complete(context={}, event={"state": "maybe"})


def test_poll_interval_is_checked_without_io():
    with pytest.raises(ValueError, match="poll_interval"):
        ApprovalSensor(task_id="w", approval_id="x", poll_interval=0)


def test_first_deferral_asks_for_a_half_time_reminder(record):
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(record.id).execute(context={})
    remind_at = deferred.value.trigger.serialize()[1]["remind_at"]
    assert remind_at == (record.created_at + timedelta(minutes=15)).isoformat()


def test_reminder_is_posted_once_then_the_sensor_waits_again(store, record):
    sensor = _sensor(record.id)
    for _ in range(2):  # a repeated reminder event (triggerer restart) posts nothing new
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute_complete(context={}, event={"approval_id": record.id, "state": "reminder"})
        assert deferred.value.trigger.serialize()[1]["remind_at"] is None
    [message] = store.outbox.for_incident(record.incident_id)
    assert message["key"] == f"r:reminder:{record.id}"
    assert "still waits for approval (0 of 1)" in message["text"]
    assert f"/incident-response/approvals/{record.id}" in message["text"]
    assert store.approvals.get(record.id).state == "pending"
