"""The on-call page's Acknowledge / Escalate / Resolve buttons, clicked as Slack posts them (signed)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.api.helpers import PREFIX, SIGNING_SECRET, click_payload, make_record, signed
from tests.fakes.pagerduty_server import FakePagerDuty
from tests.fakes.slack_server import DEFAULT_TEST_TOKEN, FakeSlackServer

URL = f"{PREFIX}/slack/interactions"


def click(client, incident_id: str, action: str, *, user: str = "U0ALICE", **kwargs):
    body, headers = signed(click_payload(incident_id, user=user, action_id=action, **kwargs))
    return client.post(URL, content=body, headers=headers)


def kinds(store, incident_id: str) -> list[str]:
    return [e.kind for e in store.incidents.timeline(incident_id)]


@pytest.fixture(autouse=True)
def answer_budget(monkeypatch):
    """Wait for the outcome whatever the machine's load: these tests read the answer's text."""
    from incident_ops.api import routes_slack

    monkeypatch.setattr(routes_slack, "ANSWER_BUDGET_SECONDS", 60.0)


@pytest.fixture
def record(store):
    """An incident with its diagnosis and a pending approval record, as a critical run has them."""
    return make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}")


def test_acknowledge_records_who_and_when(client, store, record):
    response = click(client, record.incident_id, "acknowledge")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "You acknowledged" in response.json()["text"]
    incident = store.incidents.get(record.incident_id)
    assert incident.state == "acknowledged"
    assert incident.acknowledged_by == "slack:U0ALICE" and incident.acknowledged_at is not None
    document = store.incident_document(record.incident_id)
    assert document["time_to_acknowledge_seconds"] >= 0


def test_a_second_acknowledge_says_nothing_changed(client, store, record):
    click(client, record.incident_id, "acknowledge")
    first = store.incidents.get(record.incident_id)
    again = click(client, record.incident_id, "acknowledge", user="U0BOB")
    assert again.status_code == 200
    assert again.json()["text"] == "Nothing changed: the incident is already acknowledged."
    after = store.incidents.get(record.incident_id)
    assert (after.acknowledged_by, after.acknowledged_at) == (
        first.acknowledged_by,
        first.acknowledged_at,
    )


def test_someone_not_a_responder_is_refused_privately_and_recorded(client, store, record):
    response = click(client, record.incident_id, "resolve", user="U0MALLORY")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "You may not resolve" in response.json()["text"]
    assert "slack:U0MALLORY is not an allowed responder" in response.json()["text"]
    assert store.incidents.get(record.incident_id).state == "open"
    [refused] = [e for e in store.incidents.timeline(record.incident_id) if e.kind == "action_refused"]
    assert refused.detail["by"] == "slack:U0MALLORY" and refused.detail["action"] == "resolve"
    assert store.approvals.get(record.id).state == "pending"


def test_the_responders_variable_decides_over_the_approvers(client, store, record, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_RESPONDERS", json.dumps(["slack:U0CAROL"]))
    assert "not an allowed responder" in click(client, record.incident_id, "acknowledge").json()["text"]
    assert (
        "You acknowledged" in click(client, record.incident_id, "acknowledge", user="U0CAROL").json()["text"]
    )


def test_a_person_named_in_responders_may_press_with_their_slack_identity(client, store, record, monkeypatch):
    approvers = {"default": ["alice"], "people": {"dana": ["dana", "slack:U0DANA"]}}
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_APPROVERS", json.dumps(approvers))
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_RESPONDERS", json.dumps(["dana"]))
    assert (
        "You acknowledged" in click(client, record.incident_id, "acknowledge", user="U0DANA").json()["text"]
    )


def test_escalate_records_it_and_a_second_escalate_says_so(client, store, record):
    response = click(client, record.incident_id, "escalate", user="U0BOB")
    assert "secondary on-call is paged" in response.json()["text"]
    [escalated] = [e for e in store.incidents.timeline(record.incident_id) if e.kind == "escalated"]
    assert escalated.detail["by"] == "slack:U0BOB"
    # Posted to the secondary purpose's channel (kept in the outbox here: no Slack connection).
    assert any(m["key"].endswith(":escalate:by-hand") for m in store.outbox.for_incident(record.incident_id))
    again = click(client, record.incident_id, "escalate")
    assert again.json()["text"] == "Nothing changed: the incident is already escalated."
    assert kinds(store, record.incident_id).count("escalated") == 1


def test_resolve_closes_the_incident_and_cancels_the_pending_approval(client, store, record):
    response = click(client, record.incident_id, "resolve", user="U0BOB")
    assert "finishes without the fix" in response.json()["text"]
    incident = store.incidents.get(record.incident_id)
    assert incident.state == "resolved" and incident.resolved_by == "slack:U0BOB"
    assert incident.outcome == "resolved_by_hand"
    assert store.approvals.get(record.id).state == "cancelled"
    [resolved] = [e for e in store.incidents.timeline(record.incident_id) if e.kind == "resolved"]
    assert resolved.detail["by"] == "slack:U0BOB"
    for action in ("resolve", "acknowledge", "escalate"):
        text = click(client, record.incident_id, action).json()["text"]
        assert text == "Nothing changed: the incident is already resolved."


def test_an_unknown_incident_is_answered_with_a_text(client, store):
    response = click(client, "inc-000000000000", "acknowledge")
    assert response.status_code == 200
    assert "does not exist" in response.json()["text"]


@pytest.mark.parametrize("value", ["", "apr-0123456789ab", "inc-XYZ", "inc-" + "0" * 40])
def test_a_button_without_an_incident_id_is_400(client, store, value):
    body, headers = signed(click_payload(value, action_id="acknowledge"))
    assert client.post(URL, content=body, headers=headers).status_code == 400


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64}),
        lambda body, headers: (body.replace(b"U0MALLORY", b"U0ALICE"), headers),
        lambda body, headers: signed(body=body, secret="not-the-signing-secret"),
    ],
    ids=["forged signature", "altered body", "signed with another secret"],
)
def test_forged_clicks_are_401_and_change_nothing(client, store, record, tamper):
    body, headers = signed(click_payload(record.incident_id, user="U0MALLORY", action_id="resolve"))
    body, headers = tamper(body, headers)
    assert client.post(URL, content=body, headers=headers).status_code == 401
    assert store.incidents.get(record.incident_id).state == "open"
    assert "action_refused" not in kinds(store, record.incident_id)


# -- the page message and PagerDuty -------------------------------------------------------------------


@pytest.fixture
def slack(monkeypatch, slack_server: FakeSlackServer, client) -> FakeSlackServer:
    connection = {
        "conn_type": "slack",
        "password": DEFAULT_TEST_TOKEN,
        "extra": {"base_url": slack_server.base_url, "signing_secret": SIGNING_SECRET},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(connection))
    return slack_server


@pytest.fixture
def pagerduty(monkeypatch):
    with FakePagerDuty() as server:
        monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT", server.connection_json())
        yield server


def post_page(store, record):
    """Post the on-call page as page_oncall does (it starts the incident's thread)."""
    from incident_ops.incident_lifecycle import page_blocks_for
    from incident_ops.messaging import deliver

    return deliver(
        store,
        incident_id=record.incident_id,
        key=f"{record.run_id}:page",
        channel="#oncall",
        text="CRITICAL PRESSURE_SPIKE_DETECTED on PUMP-07B",
        blocks=page_blocks_for(store, record.incident_id),
    )


def buttons(message) -> list[tuple[str, str]]:
    return [
        (element["action_id"], element["value"])
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_the_page_carries_the_three_buttons_and_updates_after_each_click(client, store, record, slack):
    page = post_page(store, record)
    posted = slack.message(page.channel, page.ts)
    incident_id = record.incident_id
    assert buttons(posted) == [
        ("acknowledge", incident_id),
        ("escalate", incident_id),
        ("resolve", incident_id),
    ]

    click(client, incident_id, "acknowledge")
    acknowledged = slack.message(page.channel, page.ts)
    assert "Acknowledged by <@U0ALICE>" in json.dumps(acknowledged["blocks"])
    assert buttons(acknowledged) == [("escalate", incident_id), ("resolve", incident_id)]

    click(client, incident_id, "escalate", user="U0BOB")
    escalated = slack.message(page.channel, page.ts)
    assert "Escalated by <@U0BOB>" in json.dumps(escalated["blocks"])
    assert buttons(escalated) == [("resolve", incident_id)]
    [reply] = [m for m in slack.replies(page.channel, page.ts) if "secondary" in m["text"]]
    # The mention comes from the blocks' template; the fallback text is escaped like any other.
    assert "slack:U0BOB" in reply["text"] and "<@U0BOB>" in json.dumps(reply["blocks"])

    click(client, incident_id, "resolve")
    resolved = slack.message(page.channel, page.ts)
    assert "Resolved by <@U0ALICE>" in json.dumps(resolved["blocks"])
    assert buttons(resolved) == []


def test_pagerduty_hears_acknowledge_escalate_and_resolve_for_the_incident(client, store, record, pagerduty):
    from incident_ops import incident_sync

    incident_sync.pagerduty_event(store, record.incident_id, incident_sync.TRIGGER)
    click(client, record.incident_id, "acknowledge")
    click(client, record.incident_id, "acknowledge")
    click(client, record.incident_id, "escalate")
    click(client, record.incident_id, "resolve")
    assert pagerduty.actions_for(record.incident_id) == ["trigger", "acknowledge", "trigger", "resolve"]
    escalation = pagerduty.events[2]
    assert escalation["payload"]["severity"] == "critical"
    assert escalation["payload"]["custom_details"]["reason"] == "escalated"


def test_a_pagerduty_failure_never_undoes_the_click(client, store, record, pagerduty):
    pagerduty.fail_next(500)
    response = click(client, record.incident_id, "acknowledge")
    assert "You acknowledged" in response.json()["text"]
    assert store.incidents.get(record.incident_id).state == "acknowledged"
    assert "pagerduty_failed" in kinds(store, record.incident_id)


def test_a_slow_click_is_answered_in_time_and_the_outcome_follows(client, store, record, slack, monkeypatch):
    import time

    from incident_ops.api import routes_slack

    real = routes_slack.act_on_incident

    def slow(action):
        time.sleep(0.5)
        return real(action)

    monkeypatch.setattr(routes_slack, "ANSWER_BUDGET_SECONDS", 0.05)
    monkeypatch.setattr(routes_slack, "act_on_incident", slow)
    response_url = f"{slack.base_url}response/T0FAKETEAM/3/ghi"
    response = click(client, record.incident_id, "acknowledge", response_url=response_url)
    assert response.json()["text"] == "Received; the outcome will follow here."
    [reply] = slack.calls("response/T0FAKETEAM/3/ghi")
    assert "You acknowledged" in reply.body["text"]
    assert store.incidents.get(record.incident_id).state == "acknowledged"
