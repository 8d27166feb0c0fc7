"""The incident store on SQLite and on a real PostgreSQL: approval records and votes, the outbox, actions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.errors import Refused
from include.store import (
    DECIDED_STATES,
    IncidentStore,
    approval_id_for,
)
from tests.unit.store_helpers import DAG_ID
from tests.unit.store_helpers import approval as _approval
from tests.unit.store_helpers import incident as _incident
from tests.unit.store_helpers import kinds as _kinds

# -- approval records -----------------------------------------------------------------------------


def test_create_approval_is_idempotent(store: IncidentStore, run_id: str) -> None:
    first = _approval(store, run_id, quorum=2)
    retry = _approval(store, run_id, quorum=1, approvers=["someone"])
    assert first.id == retry.id == approval_id_for(DAG_ID, run_id, "isolate_pump")
    assert retry.quorum == 2 and retry.approvers is None  # the retry did not overwrite the record
    assert first.state == "pending" and not first.decided
    assert first.expires_at - first.created_at == timedelta(minutes=30)
    assert _kinds(store, first.incident_id).count("approval_requested") == 1
    assert [a.id for a in store.approvals.find(run_id=run_id)] == [first.id]


def test_quorum_one_approve_decides(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    decided = store.approvals.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", comment="go", role="user"
    )
    assert decided.state == "approved" and decided.decided
    assert decided.decided_at is not None
    assert decided.deciders == ["alice"]
    assert decided.votes[0].comment == "go" and decided.votes[0].accepted
    assert store.approvals.state(record.id) == "approved"
    assert [a.id for a in store.approvals.find(state="approved", run_id=run_id)] == [record.id]
    assert store.approvals.find(state="pending", run_id=run_id) == []
    assert _kinds(store, record.incident_id)[-3:] == ["vote", "acknowledged", "approval_approved"]


def test_reject_decides_at_once_even_below_quorum(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=3, approvers=["alice", "slack:U1"])
    store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve")
    decided = store.approvals.cast_vote(record.id, identity="slack:U1", channel="slack", decision="reject")
    assert decided.state == "rejected"
    assert decided.deciders == ["alice", "slack:U1"]


def test_quorum_two_needs_two_distinct_approvers(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    after_one = store.approvals.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", role="user"
    )
    assert after_one.state == "pending"
    with pytest.raises(Refused) as info:
        store.approvals.cast_vote(record.id, identity="alice", channel="api", decision="approve", role="user")
    assert info.value.code == "conflict"
    assert "alice has already voted" in info.value.reason
    still = store.approvals.get(record.id)
    assert still.state == "pending"
    assert [(v.identity, v.accepted) for v in still.votes] == [("alice", True), ("alice", False)]
    done = store.approvals.cast_vote(
        record.id, identity="bob", channel="api", decision="approve", role="user"
    )
    assert done.state == "approved"
    assert done.deciders == ["alice", "bob"]


def test_vote_after_decision_is_refused_and_audited(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    decided = store.approvals.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", role="user"
    )
    with pytest.raises(Refused) as info:
        store.approvals.cast_vote(
            record.id, identity="bob", channel="slack", decision="reject", comment="too late?"
        )
    assert info.value.code == "conflict"
    assert "already approved" in info.value.reason
    after = store.approvals.get(record.id)
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
    with pytest.raises(Refused) as info:
        store.approvals.cast_vote(
            record.id, identity="alice", channel="web", decision="approve", now=when, role="user"
        )
    assert info.value.code == "conflict"
    assert "expired" in info.value.reason
    after = store.approvals.get(record.id)
    assert after.state == "expired"
    assert after.decided_at == when
    assert after.deciders == []
    assert [(v.identity, v.accepted) for v in after.votes] == [("alice", False)]
    assert "approval_expired" in _kinds(store, record.incident_id)


def test_vote_just_before_expiry_counts(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, deadline=timedelta(minutes=5))
    when = record.expires_at - timedelta(milliseconds=1)
    decided = store.approvals.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", now=when, role="user"
    )
    assert decided.state == "approved"


def test_a_vote_the_policy_forbids_is_refused_and_audited(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, approvers=["bob"])
    with pytest.raises(Refused) as info:
        store.approvals.cast_vote(
            record.id, identity="mallory", channel="web", decision="approve", role="user"
        )
    assert info.value.code == "forbidden"
    assert info.value.reason == "mallory is not an allowed approver for this action"
    after = store.approvals.get(record.id)
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
        store.approvals.cast_vote(
            record.id, identity="bob", channel="web", decision="approve", role="user"
        ).state
        == "approved"
    )


def test_forbidden_reject_does_not_decide(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    with pytest.raises(Refused):
        store.approvals.cast_vote(
            record.id, identity="viewer", channel="web", decision="reject", role="viewer"
        )
    assert store.approvals.state(record.id) == "pending"


def test_invalid_decision_is_refused_before_anything_is_written(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    with pytest.raises(ValueError):
        store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="maybe", role="user")
    assert store.approvals.get(record.id).votes == ()


@pytest.mark.parametrize("state", ["expired", "cancelled"])
def test_close_approval_decides_a_pending_record(store: IncidentStore, run_id: str, state: str) -> None:
    record = _approval(store, run_id)
    closed = store.approvals.close(record.id, state=state)
    assert closed.state == state and closed.decided_at is not None
    with pytest.raises(Refused):
        store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    assert store.approvals.state(record.id) == state


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_close_approval_keeps_an_earlier_decision(store: IncidentStore, run_id: str, decision: str) -> None:
    record = _approval(store, run_id)
    decided = store.approvals.cast_vote(
        record.id, identity="alice", channel="web", decision=decision, role="user"
    )
    for state in ("expired", "cancelled"):
        again = store.approvals.close(record.id, state=state)
        assert (again.state, again.decided_at) == (decided.state, decided.decided_at)


def test_close_approval_refuses_other_states(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id)
    with pytest.raises(ValueError):
        store.approvals.close(record.id, state="approved")
    assert store.approvals.state(record.id) == "pending"


def test_decided_records_never_change(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2)
    store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    decided = store.approvals.cast_vote(
        record.id, identity="bob", channel="web", decision="reject", role="user"
    )
    assert decided.state == "rejected"
    snapshot = decided.to_json()
    attempts = [
        {"identity": "carol", "decision": "approve"},
        {"identity": "dave", "decision": "approve"},
        {"identity": "alice", "decision": "approve"},
        {"identity": "erin", "decision": "reject", "role": "viewer"},
    ]
    for attempt in attempts:
        with pytest.raises(Refused):
            store.approvals.cast_vote(record.id, channel="web", **attempt)
    store.approvals.close(record.id, state="expired")
    after = store.approvals.get(record.id).to_json()
    # Everything but the audit trail of refused attempts is identical.
    assert {k: v for k, v in after.items() if k != "votes"} == {
        k: v for k, v in snapshot.items() if k != "votes"
    }
    assert after["votes"][: len(snapshot["votes"])] == snapshot["votes"]
    assert [v["accepted"] for v in after["votes"][len(snapshot["votes"]) :]] == [False] * len(attempts)
    assert after["state"] in DECIDED_STATES


def test_to_json_is_json(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, approvers=["alice"], requested_by="bob", forbid_self_approval=True)
    store.approvals.cast_vote(
        record.id, identity="alice", channel="web", decision="approve", comment="ok", role="user"
    )
    data = json.loads(json.dumps(store.approvals.get(record.id).to_json()))
    assert data["id"] == record.id and data["dag_run_id"] == run_id
    assert data["state"] == "approved" and data["approvers"] == ["alice"] and data["requested_by"] == "bob"
    assert data["votes"][0]["identity"] == "alice" and data["votes"][0]["accepted"] is True


# -- outbox ---------------------------------------------------------------------------------------


def test_outbox_enqueue_is_idempotent_and_marks_delivery(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{run_id}:page"
    first = store.outbox.enqueue(
        key=key, incident_id=incident_id, channel="#oncall", text="hi", blocks=[{"a": 1}]
    )
    retry = store.outbox.enqueue(
        key=key, incident_id=incident_id, channel="#other", text="changed", blocks=None
    )
    assert first["id"] == retry["id"]
    assert (retry["text"], retry["channel"], retry["state"], retry["blocks"]) == (
        "hi",
        "#oncall",
        "pending",
        [{"a": 1}],
    )
    store.outbox.enqueue(
        key=f"{run_id}:report", incident_id=incident_id, channel="#oncall", text="r", blocks=None
    )
    messages = store.outbox.for_incident(incident_id)
    assert [m["key"] for m in messages] == [key, f"{run_id}:report"]

    store.outbox.mark(key, state="sent", slack_ts="111.222", thread_ts="100.000")
    sent = store.outbox.for_incident(incident_id)[0]
    assert (sent["state"], sent["slack_ts"], sent["thread_ts"]) == ("sent", "111.222", "100.000")
    assert sent["sent_at"] is not None

    store.outbox.mark(f"{run_id}:report", state="undelivered", note="no Slack connection")
    undelivered = store.outbox.for_incident(incident_id)[1]
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
    row, first = store.actions.begin(**claim)
    assert first is True and row["state"] == "started"
    row2, second = store.actions.begin(**claim)
    assert second is False and row2["id"] == row["id"] and row2["state"] == "started"

    store.actions.finish(key, state="done", result={"mode": "simulated"})
    row3, third = store.actions.begin(**claim)
    assert third is False and row3["state"] == "done" and row3["result"] == {"mode": "simulated"}
    assert [a["state"] for a in store.actions.for_incident(incident_id)] == ["done"]
    assert _kinds(store, incident_id)[-1] == "action_done"


def test_failed_action_can_be_claimed_again(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{DAG_ID}:{run_id}:open_bypass_valve"
    claim = dict(
        key=key, incident_id=incident_id, action="open_bypass_valve", target="PUMP-07B", dry_run=True
    )
    row, first = store.actions.begin(**claim)
    store.actions.finish(key, state="failed", result={"error": "Timeout"})
    assert _kinds(store, incident_id)[-1] == "action_failed"
    again, claimed = store.actions.begin(**claim)
    assert claimed is True and again["id"] == row["id"] and again["state"] == "started"
    _, once_more = store.actions.begin(**claim)
    assert once_more is False
    assert len(store.actions.for_incident(incident_id)) == 1


def test_action_timeline_drops_huge_results(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    key = f"{run_id}:reduce_load"
    store.actions.begin(
        key=key, incident_id=incident_id, action="reduce_load", target="PUMP-07B", dry_run=False
    )
    store.actions.finish(key, state="done", result={"mode": "live", "dump": "x" * 5000})
    detail = store.incidents.timeline(incident_id)[-1].detail
    assert detail == {"action": "reduce_load", "mode": "live"}
    assert store.actions.for_incident(incident_id)[0]["result"]["dump"] == "x" * 5000


# -- people ---------------------------------------------------------------------------------------------

PEOPLE = {"alice": "alice", "slack:U0ALICE": "alice", "bob": "bob"}


def test_one_person_through_two_channels_counts_once(store: IncidentStore, run_id: str) -> None:
    record = _approval(store, run_id, quorum=2, approvers=["alice", "slack:U0ALICE", "bob"], people=PEOPLE)
    store.approvals.cast_vote(record.id, identity="slack:U0ALICE", channel="slack", decision="approve")
    with pytest.raises(Refused) as info:
        store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve")
    assert info.value.code == "conflict" and info.value.reason == "alice has already voted"
    after = store.approvals.get(record.id)
    assert after.state == "pending" and after.approval_count == 1
    assert [(v.identity, v.accepted) for v in after.votes] == [("slack:U0ALICE", True), ("alice", False)]
    assert (
        store.approvals.cast_vote(record.id, identity="bob", channel="api", decision="approve").state
        == "approved"
    )


def test_refused_attempts_are_kept_up_to_a_cap_per_person(store: IncidentStore, run_id: str) -> None:
    from include.approval_policy import MAX_REFUSED_ATTEMPTS

    record = _approval(store, run_id, approvers=["bob"])
    codes = []
    for _ in range(MAX_REFUSED_ATTEMPTS + 3):
        with pytest.raises(Refused) as info:
            store.approvals.cast_vote(
                record.id, identity="mallory", channel="web", decision="approve", comment="x" * 2000
            )
        codes.append(info.value.code)
    assert codes == ["forbidden"] * MAX_REFUSED_ATTEMPTS + ["too_many"] * 3
    assert len(store.approvals.get(record.id).votes) == MAX_REFUSED_ATTEMPTS


def test_records_of_an_older_schema_gain_the_new_columns(tmp_path: Path, run_id: str) -> None:

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = IncidentStore.from_url(url)
    with old.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE ir_approvals DROP COLUMN people"))
    again = IncidentStore.from_url(url)
    record = _approval(again, run_id, approvers=["alice"], people={"alice": "alice"})
    assert record.people == {"alice": "alice"}
