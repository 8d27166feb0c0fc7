"""messaging.deliver against the loopback fake Slack: once per key, even when Slack's answer is lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from incident_ops import messaging
from incident_ops.hooks.errors import SlackPermanentError, SlackTransientError
from include.store import IncidentStore
from tests.fakes.slack_server import FakeSlackServer, slack_connection_json

ALERT = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"}
# Short enough for a late answer to be a timeout, long enough for a loaded machine.
CLIENT_TIMEOUT = 1


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messaging, "BACKOFF_SECONDS", 0.01)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch, slack_server: FakeSlackServer) -> FakeSlackServer:
    connection = json.loads(slack_connection_json(slack_server.base_url))
    connection["extra"]["timeout"] = CLIENT_TIMEOUT
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(connection))
    return slack_server


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def incident(store: IncidentStore) -> str:
    return store.incidents.open(dag_id="incident_response", run_id="run-1", incident_key="k", alert=ALERT)


def send(store: IncidentStore, incident: str, key: str, text: str = "hello") -> messaging.Delivery:
    return messaging.deliver(store, incident_id=incident, key=key, channel="#oncall", text=text)


def row(store: IncidentStore, incident: str, key: str) -> dict[str, Any]:
    [found] = [m for m in store.outbox.for_incident(incident) if m["key"] == key]
    return found


class CrashAfterPost:
    """Make the store fail once when a message is about to be recorded as sent (the crash window)."""

    def __init__(self, store: IncidentStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.crashed = False
        real = store.outbox.mark

        def mark_message(key: str, **values: Any) -> None:
            if values.get("state") == "sent" and not self.crashed:
                self.crashed = True
                raise ConnectionError("store went away right after the post")
            real(key, **values)

        monkeypatch.setattr(store.outbox, "mark", mark_message)


def test_messages_thread_under_the_first_and_carry_their_key(
    store: IncidentStore, incident: str, slack: FakeSlackServer
) -> None:
    first = send(store, incident, "run-1:page")
    second = send(store, incident, "run-1:report")
    assert first.sent and second.sent
    assert store.incidents.get(incident).slack_ts == first.ts
    [reply] = slack.replies(first.channel, first.ts)
    assert reply["ts"] == second.ts
    assert [len(slack.posts(k)) for k in ("run-1:page", "run-1:report")] == [1, 1]
    assert row(store, incident, "run-1:report")["state"] == "sent"


def test_a_crash_after_the_reply_was_posted_posts_nothing_twice(
    store: IncidentStore, incident: str, slack: FakeSlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = send(store, incident, "run-1:page")
    crash = CrashAfterPost(store, monkeypatch)
    with pytest.raises(ConnectionError):
        send(store, incident, "run-1:report")
    assert crash.crashed and row(store, incident, "run-1:report")["state"] == "posting"

    retried = send(store, incident, "run-1:report")

    assert len(slack.posts("run-1:report")) == 1
    assert [m["ts"] for m in slack.replies(thread.channel, thread.ts)] == [retried.ts]
    saved = row(store, incident, "run-1:report")
    assert (saved["state"], saved["slack_ts"], saved["thread_ts"]) == ("sent", retried.ts, thread.ts)
    assert slack.calls("conversations.replies"), "the retry did not look before posting"


def test_a_crash_after_the_thread_starter_was_posted_keeps_one_thread(
    store: IncidentStore, incident: str, slack: FakeSlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_set_thread = store.incidents.set_thread

    def set_thread_crashes_once(incident_id: str, **where: str) -> tuple[str, str]:
        monkeypatch.setattr(store.incidents, "set_thread", real_set_thread)
        raise ConnectionError("store went away before the thread was recorded")

    monkeypatch.setattr(store.incidents, "set_thread", set_thread_crashes_once)
    with pytest.raises(ConnectionError):
        send(store, incident, "run-1:page")
    assert store.incidents.get(incident).slack_ts is None

    first = send(store, incident, "run-1:page")
    second = send(store, incident, "run-1:report")

    assert len(slack.posts("run-1:page")) == 1
    assert store.incidents.get(incident).slack_ts == first.ts
    assert [m["ts"] for m in slack.replies(first.channel, first.ts)] == [second.ts]
    assert slack.calls("conversations.history")


def test_an_answer_lost_to_a_500_is_found_instead_of_posted_again(
    store: IncidentStore, incident: str, slack: FakeSlackServer
) -> None:
    thread = send(store, incident, "run-1:page")
    slack.fail_after_next_post(1)
    reply = send(store, incident, "run-1:report")
    assert len(slack.posts("run-1:report")) == 1
    assert [m["ts"] for m in slack.replies(thread.channel, thread.ts)] == [reply.ts]


def test_an_answer_too_late_for_the_client_is_found_instead_of_posted_again(
    store: IncidentStore, incident: str, slack: FakeSlackServer
) -> None:
    thread = send(store, incident, "run-1:page")
    slack.answer_late(1, CLIENT_TIMEOUT + 1.0)
    reply = send(store, incident, "run-1:report")
    assert len(slack.posts("run-1:report")) == 1
    assert [m["ts"] for m in slack.replies(thread.channel, thread.ts)] == [reply.ts]


def test_429_then_500s_then_recovery_arrive_once_in_order_in_the_thread(
    store: IncidentStore, incident: str, slack: FakeSlackServer
) -> None:
    thread = send(store, incident, "run-1:page")
    slack.rate_limit_next(1, retry_after=1)
    slack.fail_next(1, status=503)
    first = send(store, incident, "run-1:a")
    second = send(store, incident, "run-1:b")
    assert [m["ts"] for m in slack.replies(thread.channel, thread.ts)] == [first.ts, second.ts]
    assert [len(slack.posts(k)) for k in ("run-1:a", "run-1:b")] == [1, 1]
    assert 429 in {r.status for r in slack.requests} and 503 in {r.status for r in slack.requests}


def test_outside_a_task_a_message_that_keeps_failing_is_undelivered_on_the_timeline(
    store: IncidentStore, incident: str, slack: FakeSlackServer
) -> None:
    send(store, incident, "run-1:page")
    slack.fail_next(messaging.ATTEMPTS * 2, status=500)
    with pytest.raises(SlackTransientError):
        send(store, incident, "run-1:report")
    saved = row(store, incident, "run-1:report")
    assert (saved["state"], saved["note"]) == ("undelivered", "http_500")
    [event] = [e for e in store.incidents.timeline(incident) if e.kind == "message_undelivered"]
    assert event.detail == {"key": "run-1:report", "error": "http_500"}
    assert not slack.posts("run-1:report")


def test_with_task_retries_left_the_message_stays_pending_then_is_sent_once(
    store: IncidentStore, incident: str, slack: FakeSlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(store, incident, "run-1:page")
    monkeypatch.setattr(messaging, "_task_retries_left", lambda: True)
    slack.fail_after_next_post(1)
    slack.fail_next(messaging.ATTEMPTS - 1, status=500)
    with pytest.raises(SlackTransientError):
        send(store, incident, "run-1:report")
    assert row(store, incident, "run-1:report")["state"] == "posting"
    assert not [e for e in store.incidents.timeline(incident) if e.kind == "message_undelivered"]

    send(store, incident, "run-1:report")  # the task's next try
    assert len(slack.posts("run-1:report")) == 1
    assert row(store, incident, "run-1:report")["state"] == "sent"


def test_a_refused_message_is_undelivered_at_once(
    store: IncidentStore, incident: str, slack: FakeSlackServer
) -> None:
    slack.mark_unknown("oncall")
    with pytest.raises(SlackPermanentError):
        send(store, incident, "run-1:page")
    assert len(slack.calls("chat.postMessage")) == 1
    assert row(store, incident, "run-1:page")["state"] == "undelivered"
    assert [e.kind for e in store.incidents.timeline(incident)][-1] == "message_undelivered"
