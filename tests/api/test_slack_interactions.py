"""POST /incident-response/slack/interactions, played as Slack plays it: signed block_actions forms."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.api.helpers import PREFIX, SIGNING_SECRET, click_payload, make_record, signed, snapshot
from tests.fakes.slack_server import DEFAULT_TEST_TOKEN, FakeSlackServer

URL = f"{PREFIX}/slack/interactions"


def click(client, record_id: str, **kwargs):
    body, headers = signed(click_payload(record_id, **kwargs))
    return client.post(URL, content=body, headers=headers)


# -- votes ------------------------------------------------------------------------------------------


def test_a_signed_approve_click_decides_the_record(client, store):
    record = make_record(store)
    response = click(client, record.id, user="U0ALICE")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "approved" in response.json()["text"]
    after = store.approvals.get(record.id)
    assert after.state == "approved"
    [vote] = after.votes
    assert (vote.identity, vote.channel, vote.decision) == ("slack:U0ALICE", "slack", "approve")
    assert vote.accepted


def test_a_reject_click_rejects(client, store):
    record = make_record(store, quorum=2)
    response = click(client, record.id, user="U0BOB", action_id="reject")
    assert response.status_code == 200 and "rejected" in response.json()["text"]
    assert store.approvals.get(record.id).state == "rejected"


def test_quorum_of_two_with_two_slack_users(client, store):
    record = make_record(store, quorum=2)
    first = click(client, record.id, user="U0ALICE")
    assert first.status_code == 200
    assert "1 of 2 approvals" in first.json()["text"]
    assert store.approvals.get(record.id).state == "pending"
    second = click(client, record.id, user="U0BOB")
    assert "approved" in second.json()["text"]
    after = store.approvals.get(record.id)
    assert after.state == "approved" and after.deciders == ["slack:U0ALICE", "slack:U0BOB"]


def test_unknown_slack_user_is_refused_and_audited(client, store):
    record = make_record(store)
    response = click(client, record.id, user="U0MALLORY")
    assert response.status_code == 200
    text = response.json()["text"]
    assert "not counted" in text and "slack:U0MALLORY is not an allowed approver" in text
    after = store.approvals.get(record.id)
    assert snapshot(after) == snapshot(record)
    [attempt] = after.votes
    assert (attempt.identity, attempt.channel, attempt.accepted) == ("slack:U0MALLORY", "slack", False)
    events = [e.kind for e in store.incidents.timeline(record.incident_id)]
    assert "vote_refused" in events


def test_without_the_variable_no_slack_user_may_vote(client, store):
    record = make_record(store, approvers=None)
    response = click(client, record.id, user="U0ALICE")
    assert "no Slack approvers are configured" in response.json()["text"]
    assert store.approvals.get(record.id).state == "pending"


def test_double_click_answers_already_decided_and_changes_nothing(client, store):
    record = make_record(store)
    click(client, record.id, user="U0ALICE")
    decided = store.approvals.get(record.id)
    again = click(client, record.id, user="U0ALICE")
    assert again.status_code == 200
    assert "already approved" in again.json()["text"]
    assert snapshot(store.approvals.get(record.id)) == snapshot(decided)


def test_unknown_record_is_answered_200_with_a_text(client, store):
    response = click(client, "apr-000000000000")
    assert response.status_code == 200
    assert "does not exist" in response.json()["text"]


def test_the_open_record_link_button_is_acknowledged_and_ignored(client, store):
    record = make_record(store)
    response = click(client, record.id, action_id="open_record")
    assert response.status_code == 200 and response.content == b""
    assert store.approvals.get(record.id) == record


# -- refusals before anything is parsed -----------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64}),
        lambda body, headers: (body.replace(b"U0MALLORY", b"U0ALICE"), headers),
        lambda body, headers: signed(body=body, secret="not-the-signing-secret"),
    ],
    ids=["forged signature", "altered body", "signed with another secret"],
)
def test_forged_requests_are_401(client, store, tamper):
    record = make_record(store)
    body, headers = signed(click_payload(record.id, user="U0MALLORY"))
    body, headers = tamper(body, headers)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert store.approvals.get(record.id) == record


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_stale_timestamps_are_401(client, store, age):
    record = make_record(store)
    body, headers = signed(click_payload(record.id), timestamp=int(time.time()) - age)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert "stale" in response.json()["detail"]
    assert store.approvals.get(record.id) == record


@pytest.mark.parametrize("header", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_missing_headers_are_401(client, store, header):
    record = make_record(store)
    body, headers = signed(click_payload(record.id))
    del headers[header]
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert store.approvals.get(record.id) == record


@pytest.mark.parametrize("value", ["abc", "1e9", "", "17000000000000000000000", "-1"])
def test_malformed_timestamps_are_401(client, store, value):
    record = make_record(store)
    body, headers = signed(click_payload(record.id))
    response = client.post(URL, content=body, headers={**headers, "X-Slack-Request-Timestamp": value})
    assert response.status_code == 401
    assert store.approvals.get(record.id) == record


def test_oversized_bodies_are_413(client, store):
    record = make_record(store)
    payload = click_payload(record.id)
    payload["padding"] = "x" * (64 * 1024)
    body, headers = signed(payload)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 413
    assert store.approvals.get(record.id) == record


def test_oversized_chunked_bodies_are_413(client, store):
    # No Content-Length: the body is read in chunks and dropped once past 64 KiB.
    record = make_record(store)
    _, headers = signed(click_payload(record.id))

    def chunks():
        for _ in range(100):
            yield b"x" * 4096

    response = client.post(URL, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert store.approvals.get(record.id) == record


def test_signed_but_malformed_payload_is_400(client, store):
    body, headers = signed(body=b"payload=%7Bnot-json")
    assert client.post(URL, content=body, headers=headers).status_code == 400
    body, headers = signed(body=b"no_payload_here=1")
    assert client.post(URL, content=body, headers=headers).status_code == 400


def test_a_malformed_payload_with_a_bad_signature_is_401_not_400(client):
    body, headers = signed(body=b"payload=%7Bnot-json", secret="wrong")
    assert client.post(URL, content=body, headers=headers).status_code == 401


def test_no_signing_secret_configured_is_503(client, store, monkeypatch):
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    record = make_record(store)
    response = click(client, record.id)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "signing_secret" in detail and "SLACK_SIGNING_SECRET" in detail
    assert store.approvals.get(record.id) == record


# -- Slack itself: the message update and the reply to the clicker ---------------------------------------


@pytest.fixture
def slack(monkeypatch, slack_server: FakeSlackServer, client) -> FakeSlackServer:
    """Point `slack_api_default` at the fake Slack, with the signing secret in its extra (not the env)."""
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    connection = {
        "conn_type": "slack",
        "password": DEFAULT_TEST_TOKEN,
        "extra": {"base_url": slack_server.base_url, "signing_secret": SIGNING_SECRET},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(connection))
    return slack_server


def _posted_request(store, record):
    from incident_ops.hooks.slack import IncidentSlackHook

    button = {
        "type": "button",
        "action_id": "approve",
        "value": record.id,
        "text": {"type": "plain_text", "text": "Approve"},
    }
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Approval needed"}},
        {"type": "actions", "elements": [button]},
    ]
    ref = IncidentSlackHook().post_message(channel="#oncall", text="Approval needed", blocks=blocks)
    store.approvals.set_message(record.id, channel=ref.channel, ts=ref.ts)
    return ref


def test_the_decision_replaces_the_buttons_with_the_outcome(client, store, slack):
    record = make_record(store)
    ref = _posted_request(store, record)
    response = click(client, record.id, user="U0ALICE")
    assert response.status_code == 200
    [update] = slack.calls("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (ref.channel, ref.ts)
    assert "approved" in update.body["text"]
    message = slack.message(ref.channel, ref.ts)
    assert all(block["type"] != "actions" for block in message["blocks"])
    assert "approved" in json.dumps(message["blocks"]) and "<@U0ALICE>" in json.dumps(message["blocks"])


def test_a_vote_short_of_quorum_leaves_the_message(client, store, slack):
    record = make_record(store, quorum=2)
    _posted_request(store, record)
    assert "1 of 2" in click(client, record.id, user="U0ALICE").json()["text"]
    assert slack.calls("chat.update") == []


def test_the_reply_goes_to_the_clicker_through_response_url(client, store, slack):
    record = make_record(store)
    response_url = f"{slack.base_url}response/T0FAKETEAM/1/abc"
    response = click(client, record.id, user="U0MALLORY", response_url=response_url)
    [reply] = slack.calls("response/T0FAKETEAM/1/abc")
    assert reply.body["response_type"] == "ephemeral" and reply.body["replace_original"] is False
    assert reply.body["text"] == response.json()["text"]


def test_no_reply_to_an_untrusted_response_url(client, store, slack):
    record = make_record(store)
    with FakeSlackServer() as elsewhere:
        click(client, record.id, user="U0ALICE", response_url=f"{elsewhere.base_url}response/x")
        assert elsewhere.requests == []
    assert store.approvals.get(record.id).state == "approved"


def test_a_slow_vote_is_answered_in_time_and_the_outcome_follows(client, store, slack, monkeypatch):
    from incident_ops.api import routes_slack

    real_decide, real_follow_up = routes_slack.decide, routes_slack._reply_when_done
    answered = threading.Event()

    def slow_decide(action):
        # The vote finishes only once the route has answered Slack and handed the rest to a follow-up.
        assert answered.wait(timeout=30), "the route never answered within its budget"
        return real_decide(action)

    async def follow_up(*args):
        answered.set()
        await real_follow_up(*args)

    monkeypatch.setattr(routes_slack, "ANSWER_BUDGET_SECONDS", 0.05)
    monkeypatch.setattr(routes_slack, "decide", slow_decide)
    monkeypatch.setattr(routes_slack, "_reply_when_done", follow_up)
    record = make_record(store)
    response_url = f"{slack.base_url}response/T0FAKETEAM/2/def"
    response = click(client, record.id, user="U0ALICE", response_url=response_url)
    assert response.status_code == 200
    assert "still being recorded" in response.json()["text"]
    # The test client returns once the background task ran: the vote landed and its outcome followed.
    [reply] = slack.calls("response/T0FAKETEAM/2/def")
    assert "approved" in reply.body["text"]
    assert store.approvals.get(record.id).state == "approved"
