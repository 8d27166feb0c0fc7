"""Slack request signatures and block_actions payloads (include/slack_interactions.py), no Airflow needed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from include.slack_interactions import (
    InteractionPayloadError,
    SlackSignatureError,
    parse_block_action,
    verify_slack_signature,
)
from tests.api.helpers import click_payload

# Slack's published example (docs.slack.dev, "Verifying requests from Slack"; also slack_sdk's own test).
# Note the trigger_id ends in ...d2c447fce8b6703c: a copy ending in ...d2c659f4f17f0a8f circulates, and
# that body does not match the published signature.
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


@dataclass
class FixedClock:
    at: float

    def now(self) -> float:
        return self.at


def verify(*, body=BODY, timestamp=TIMESTAMP, signature=SIGNATURE, secret=SECRET, now=1531420618 + 10):
    verify_slack_signature(
        body=body, timestamp=timestamp, signature=signature, signing_secret=secret, clock=FixedClock(now)
    )


def test_slacks_published_example_is_valid():
    verify()


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_five_minutes_either_way_is_accepted(offset):
    verify(now=int(TIMESTAMP) + offset)


@pytest.mark.parametrize("offset", [-301, 301, 86_400])
def test_older_or_newer_than_five_minutes_is_refused(offset):
    with pytest.raises(SlackSignatureError, match="stale"):
        verify(now=int(TIMESTAMP) + offset)


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "8f742231b10e8888abcd99yyyzzz85a6"},
        {"body": BODY + b"&extra=1"},
        {"body": BODY.replace(b"roadrunner", b"coyote")},
        {"signature": SIGNATURE[:-1] + "4"},
        {"timestamp": "1531420619"},
    ],
    ids=["other secret", "appended", "altered", "other signature", "other timestamp"],
)
def test_any_change_breaks_the_signature(change):
    with pytest.raises(SlackSignatureError, match="mismatch"):
        verify(**change)


@pytest.mark.parametrize("missing", ["timestamp", "signature"])
def test_missing_headers_are_refused(missing):
    with pytest.raises(SlackSignatureError, match="missing"):
        verify(**{missing: None})


@pytest.mark.parametrize(
    "timestamp",
    [
        "",
        "abc",
        " 1531420618",
        "1531420618 ",
        "1_531_420_618",
        "-1531420618",
        "1531420618.5",
        "١٥٣١٤٢٠٦١٨",
        "9" * 40,
    ],
)
def test_malformed_timestamps_are_refused_not_crashed_on(timestamp):
    with pytest.raises(SlackSignatureError):
        verify(timestamp=timestamp)


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "a2114d57",
        "v1=" + SIGNATURE[3:],
        SIGNATURE.upper().replace("V0", "v0"),
        SIGNATURE + "00",
        "v0=" + "é" * 64,
        SIGNATURE[:-1] + " ",
    ],
)
def test_malformed_signatures_are_refused_not_crashed_on(signature):
    with pytest.raises(SlackSignatureError):
        verify(signature=signature)


def test_a_body_that_is_not_utf8_is_refused():
    with pytest.raises(SlackSignatureError):
        verify(body=b"\xff\xfe" + BODY)


def form(payload) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def test_an_approve_click_is_read():
    action = parse_block_action(
        form(
            click_payload(
                "apr-0123456789ab", user="U0ALICE", response_url="https://hooks.slack.com/actions/T/1/x"
            )
        )
    )
    assert action is not None
    assert (action.decision, action.record_id, action.user_id, action.identity) == (
        "approve",
        "apr-0123456789ab",
        "U0ALICE",
        "slack:U0ALICE",
    )
    assert action.team_id == "T0FAKETEAM"
    assert action.response_url == "https://hooks.slack.com/actions/T/1/x"


def test_a_reject_click_is_read():
    action = parse_block_action(form(click_payload("apr-0123456789ab", action_id="reject")))
    assert action is not None and action.decision == "reject"


@pytest.mark.parametrize(
    "payload",
    [
        click_payload("apr-0123456789ab", action_id="open_record"),
        {**click_payload("apr-0123456789ab"), "type": "view_submission"},
        {"type": "shortcut", "callback_id": "x"},
    ],
    ids=["link button", "modal", "shortcut"],
)
def test_other_interactions_are_not_decisions(payload):
    assert parse_block_action(form(payload)) is None


@pytest.mark.parametrize(
    "body",
    [
        b"payload=%7Bnot+json",
        b"payload=%5B1%2C2%5D",
        b"nothing=here",
        b"payload=1&payload=2",
        b"\xff\xfe",
        form({**click_payload("apr-0123456789ab"), "user": {}}),
        form({**click_payload("apr-0123456789ab"), "user": {"id": "<script>"}}),
        form({**click_payload("apr-0123456789ab"), "actions": "approve"}),
        form({**click_payload(""), "type": "block_actions"}),
        form(click_payload("apr-" + "0" * 100)),
    ],
    ids=[
        "bad json",
        "not an object",
        "no payload",
        "two payloads",
        "not utf-8",
        "no user",
        "bad user id",
        "actions not a list",
        "empty value",
        "value too long",
    ],
)
def test_malformed_payloads_are_refused(body):
    with pytest.raises(InteractionPayloadError):
        parse_block_action(body)
