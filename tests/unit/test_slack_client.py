"""IncidentSlackHook against the loopback fake Slack Web API (real HTTP, real slack_sdk)."""

from __future__ import annotations

import json
import logging
import pickle
import re
import socket
import urllib.error
import urllib.request

import pytest
from airflow.providers.slack.hooks.slack import SlackHook
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from incident_ops.hooks.errors import (
    SlackDeliveryError,
    SlackNotConfiguredError,
    SlackPermanentError,
    SlackRateLimitedError,
    SlackTransientError,
    slack_error_for,
)
from incident_ops.hooks.slack import IncidentSlackHook, SlackMessageRef
from incident_ops.integrations import slack_on
from tests.fakes.slack_server import FakeSlackServer, slack_connection_json

TS_RE = re.compile(r"^\d{10}\.\d{6}$")

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "PUMP-07B: pressure spike ⚠️"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Severity:* critical\n<https://x/y|record>"}},
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "apr-1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "apr-1",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
]


def _free_port() -> int:
    """Return a loopback port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def client(slack_connection: str) -> IncidentSlackHook:
    return IncidentSlackHook(slack_conn_id=slack_connection)


def test_post_then_threaded_reply(client: IncidentSlackHook, slack_server: FakeSlackServer) -> None:
    parent = client.post_message(channel="#oncall", text="Incident opened")
    assert parent == SlackMessageRef(channel="C0ONCALL01", ts=parent.ts)
    assert TS_RE.match(parent.ts)

    reply = client.post_message(channel=parent.channel, text="Resolved", thread_ts=parent.ts)

    assert reply.channel == parent.channel
    assert reply.ts != parent.ts
    posts = slack_server.calls("chat.postMessage")
    assert [c.body.get("thread_ts") for c in posts] == [None, parent.ts]
    replies = slack_server.replies("#oncall", parent.ts)
    assert [(m["ts"], m["text"]) for m in replies] == [(reply.ts, "Resolved")]
    assert slack_server.message(parent.channel, parent.ts)["reply_count"] == 1


def test_blocks_arrive_intact(client: IncidentSlackHook, slack_server: FakeSlackServer) -> None:
    ref = client.post_message(channel="#incidents", text="fallback text", blocks=BLOCKS)

    (call,) = slack_server.calls("chat.postMessage")
    assert call.content_type == "application/json"
    assert call.body["blocks"] == BLOCKS
    stored = slack_server.message(ref.channel, ref.ts)
    assert stored is not None
    assert stored["blocks"] == BLOCKS
    assert stored["text"] == "fallback text"


def test_update_changes_stored_message(client: IncidentSlackHook, slack_server: FakeSlackServer) -> None:
    ref = client.post_message(channel="#oncall", text="Approval pending", blocks=BLOCKS)
    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U1>"}}]

    updated = client.update_message(channel=ref.channel, ts=ref.ts, text="Approved", blocks=new_blocks)

    assert updated == ref
    stored = slack_server.message(ref.channel, ref.ts)
    assert stored is not None
    assert (stored["text"], stored["blocks"]) == ("Approved", new_blocks)
    assert len(slack_server.messages()) == 1
    (call,) = slack_server.calls("chat.update")
    assert (call.body["channel"], call.body["ts"]) == (ref.channel, ref.ts)


def test_update_of_unknown_ts_is_permanent(client: IncidentSlackHook, slack_server: FakeSlackServer) -> None:
    with pytest.raises(SlackPermanentError) as info:
        client.update_message(channel="#oncall", ts="1600000000.000001", text="x")

    assert info.value.error_code == "message_not_found"
    assert info.value.method == "chat.update"


def test_token_sent_as_bearer(client: IncidentSlackHook, slack_server: FakeSlackServer) -> None:
    client.post_message(channel="#oncall", text="hello")

    (call,) = slack_server.calls("chat.postMessage")
    assert call.authorization == "Bearer xoxb-test-token"
    assert "token" not in call.body


def test_wrong_token_is_permanent(monkeypatch: pytest.MonkeyPatch, slack_server: FakeSlackServer) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_API_DEFAULT", slack_connection_json(slack_server.base_url, "xoxb-wrong")
    )

    with pytest.raises(SlackPermanentError) as info:
        IncidentSlackHook().post_message(channel="#oncall", text="hello")

    assert info.value.error_code == "invalid_auth"
    assert slack_server.messages() == []


def test_is_configured_false_without_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_API_DEFAULT", raising=False)

    assert slack_on("slack_api_default") is False


def test_is_configured_true_with_connection(slack_connection: str) -> None:
    assert slack_on(slack_connection) is True
    assert slack_on() is True


def test_is_configured_false_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_NO_TOKEN", json.dumps({"conn_type": "slack"}))

    assert slack_on("slack_no_token") is False


def test_missing_connection_raises_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_API_DEFAULT", raising=False)

    with pytest.raises(SlackNotConfiguredError) as info:
        IncidentSlackHook().post_message(channel="#oncall", text="hello")

    assert info.value.permanent is True
    assert info.value.error_code == "not_configured"


def test_rate_limit_is_waited_out_and_posted_once(
    client: IncidentSlackHook, slack_server: FakeSlackServer
) -> None:
    slack_server.rate_limit_next(1, retry_after=1)

    ref = client.post_message(channel="#oncall", text="after the limit")

    calls = slack_server.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert len(slack_server.messages()) == 1
    assert slack_server.message(ref.channel, ref.ts) is not None
    # slack_sdk sleeps int(Retry-After) + jitter in [0, 1) before the retry.
    assert calls[1].time - calls[0].time >= 0.99


def test_rate_limit_beyond_retries_is_transient(slack_connection: str, slack_server: FakeSlackServer) -> None:
    slack_server.rate_limit_next(1, retry_after=7)
    client = IncidentSlackHook(slack_conn_id=slack_connection, max_rate_limit_retries=0)

    with pytest.raises(SlackRateLimitedError) as info:
        client.post_message(channel="#oncall", text="limited")

    assert info.value.permanent is False
    assert isinstance(info.value, SlackTransientError)
    assert info.value.retry_after == 7
    assert info.value.status_code == 429
    assert len(slack_server.calls()) == 1
    assert slack_server.messages() == []


def test_channel_not_found_is_permanent_and_not_retried(
    client: IncidentSlackHook, slack_server: FakeSlackServer
) -> None:
    slack_server.mark_unknown("#does-not-exist")

    with pytest.raises(SlackPermanentError) as info:
        client.post_message(channel="#does-not-exist", text="hello")

    err = info.value
    assert (err.error_code, err.permanent, err.channel, err.method) == (
        "channel_not_found",
        True,
        "#does-not-exist",
        "chat.postMessage",
    )
    assert len(slack_server.calls()) == 1


def test_server_error_is_transient(client: IncidentSlackHook, slack_server: FakeSlackServer) -> None:
    slack_server.fail_next(1, status=500)

    with pytest.raises(SlackTransientError) as info:
        client.post_message(channel="#oncall", text="hello")

    assert not isinstance(info.value, SlackPermanentError)
    assert (info.value.error_code, info.value.status_code, info.value.permanent) == ("http_500", 500, False)
    assert len(slack_server.calls()) == 1
    assert slack_server.messages() == []
    # The injected fault is consumed: the next call goes through.
    client.post_message(channel="#oncall", text="hello again")
    assert len(slack_server.messages()) == 1


def test_connection_refused_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    base_url = f"http://127.0.0.1:{_free_port()}/api/"
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", slack_connection_json(base_url))

    with pytest.raises(SlackTransientError) as info:
        IncidentSlackHook(max_connection_retries=0).post_message(channel="#oncall", text="hello")

    assert info.value.error_code == "connection_error"


def test_retry_handlers_configured() -> None:
    handlers = IncidentSlackHook(
        max_rate_limit_retries=5, max_connection_retries=2
    ).provider_hook.retry_handlers

    assert handlers is not None
    by_type = {type(h): h.max_retry_count for h in handlers}
    assert by_type == {RateLimitErrorRetryHandler: 5, ConnectionErrorRetryHandler: 2}


def test_init_validates_without_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_API_DEFAULT", raising=False)
    IncidentSlackHook()  # no connection needed until the first call
    with pytest.raises(ValueError):
        IncidentSlackHook(max_rate_limit_retries=-1)
    with pytest.raises(ValueError):
        IncidentSlackHook(slack_conn_id="")


def test_no_token_or_message_text_in_logs(
    client: IncidentSlackHook, slack_server: FakeSlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack_server.mark_unknown("#gone")

    ref = client.post_message(channel="#oncall", text="SECRET-BODY-123", blocks=BLOCKS)
    client.update_message(channel=ref.channel, ts=ref.ts, text="SECRET-BODY-456")
    with pytest.raises(SlackPermanentError):
        client.post_message(channel="#gone", text="SECRET-BODY-789")

    assert ref.ts in caplog.text
    for secret in ("xoxb-test-token", "SECRET-BODY", "PUMP-07B"):
        assert secret not in caplog.text


def test_errors_pickle_round_trip() -> None:
    err = slack_error_for(
        status_code=429, error="ratelimited", method="chat.postMessage", channel="#x", retry_after=3
    )

    clone = pickle.loads(pickle.dumps(err))

    assert type(clone) is SlackRateLimitedError
    assert (clone.error_code, clone.channel, clone.retry_after, str(clone)) == (
        "ratelimited",
        "#x",
        3,
        str(err),
    )


@pytest.mark.parametrize(
    ("status", "error", "expected", "code"),
    [
        (200, "channel_not_found", SlackPermanentError, "channel_not_found"),
        (200, "not_in_channel", SlackPermanentError, "not_in_channel"),
        (200, "invalid_auth", SlackPermanentError, "invalid_auth"),
        (200, "internal_error", SlackTransientError, "internal_error"),
        (503, "Received a response in a non-JSON format: <html>", SlackTransientError, "http_503"),
        (429, "ratelimited", SlackRateLimitedError, "ratelimited"),
        (400, "invalid_arguments", SlackPermanentError, "invalid_arguments"),
    ],
)
def test_error_classification(status: int, error: str, expected: type[SlackDeliveryError], code: str) -> None:
    err = slack_error_for(status_code=status, error=error)

    assert type(err) is expected
    assert err.error_code == code
    assert err.permanent is issubclass(expected, SlackPermanentError)


def test_fake_accepts_form_encoded_bodies(slack_connection: str, slack_server: FakeSlackServer) -> None:
    # slack_sdk's typed methods send JSON; the generic call with data= sends a form body.
    hook = SlackHook(slack_conn_id=slack_connection)
    response = hook.call(
        "chat.postMessage", data={"channel": "#oncall", "text": "form", "blocks": json.dumps(BLOCKS)}
    )

    (call,) = slack_server.calls("chat.postMessage")
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.body["blocks"] == json.dumps(BLOCKS)
    assert slack_server.message("#oncall", response["ts"])["blocks"] == BLOCKS


def test_fake_answers_not_authed_without_token(slack_server: FakeSlackServer) -> None:
    request = urllib.request.Request(
        slack_server.base_url + "chat.postMessage",
        data=json.dumps({"channel": "#oncall", "text": "x"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.loads(response.read())

    assert body == {"ok": False, "error": "not_authed"}
    assert slack_server.messages() == []


def test_fake_rate_limit_sends_retry_after(slack_server: FakeSlackServer) -> None:
    slack_server.rate_limit_next(1, retry_after=3)
    request = urllib.request.Request(slack_server.base_url + "auth.test", data=b"", method="POST")

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)

    assert info.value.code == 429
    assert info.value.headers["Retry-After"] == "3"
    info.value.close()
