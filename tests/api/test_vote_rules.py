"""Who may vote, through every channel at once: people, Slack identities, refusals kept within a cap."""

from __future__ import annotations

import json

from include.approval_policy import MAX_REFUSED_ATTEMPTS
from tests.api.helpers import APPROVERS, PREFIX, bearer, click_payload, make_record, signed

PEOPLE = {**APPROVERS, "people": {"alice": ["alice", "slack:U0ALICE"], "bob": ["bob", "slack:U0BOB"]}}


def vote(client, record_id: str, token: str, decision: str = "approve"):
    return client.post(
        f"{PREFIX}/api/approvals/{record_id}/decisions", json={"decision": decision}, headers=bearer(token)
    )


def click(client, record_id: str, user: str):
    body, headers = signed(click_payload(record_id, user=user))
    return client.post(f"{PREFIX}/slack/interactions", content=body, headers=headers)


def test_one_person_in_slack_and_on_the_web_is_one_approval(client, store, tokens, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_APPROVERS", json.dumps(PEOPLE))
    record = make_record(store, quorum=2)

    assert "1 of 2 approvals" in click(client, record.id, user="U0ALICE").json()["text"]
    second = vote(client, record.id, tokens["alice"])

    assert second.status_code == 409 and second.json()["detail"] == "alice has already voted"
    after = store.approvals.get(record.id)
    assert after.state == "pending" and after.approval_count == 1
    assert [(v.identity, v.accepted) for v in after.votes] == [("slack:U0ALICE", True), ("alice", False)]
    # Another person completes the quorum.
    assert vote(client, record.id, tokens["bob"]).json()["state"] == "approved"


def test_without_people_two_identities_still_count_as_two(client, store, tokens):
    record = make_record(store, quorum=2)
    click(client, record.id, user="U0ALICE")
    assert vote(client, record.id, tokens["alice"]).json()["state"] == "approved"


def test_refused_attempts_are_kept_up_to_the_cap_then_answered_429(client, store, tokens):
    record = make_record(store)
    statuses = [
        vote(client, record.id, tokens["victor"]).status_code for _ in range(MAX_REFUSED_ATTEMPTS + 2)
    ]

    assert statuses == [403] * MAX_REFUSED_ATTEMPTS + [429, 429]
    after = store.approvals.get(record.id)
    assert after.state == "pending" and len(after.votes) == MAX_REFUSED_ATTEMPTS
