"""Who may run an incident, what a state allows, and how clicks and `/incident` are read (pure)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from include.approval_policy import ApproverPolicy
from include.models import Alert, Analysis
from include.responders import ResponderConfigError, ResponderPolicy, responder_refusal, state_refusal
from include.slack_blocks import page_blocks
from include.slack_interactions import (
    BlockAction,
    CommandUsageError,
    IncidentAction,
    InteractionPayloadError,
    parse_block_action,
    parse_incident_command,
    parse_slash_command,
)

APPROVERS = ApproverPolicy.from_config(
    {"default": ["alice", "slack:U0ALICE"], "people": {"dana": ["dana", "slack:U0DANA"]}}
)


def policy(raw):
    return ResponderPolicy.from_config(raw, APPROVERS)


def test_without_the_variable_the_approvers_default_may_respond():
    fallback = policy(None)
    assert responder_refusal(fallback, identity="alice", channel="api", role="user") is None
    assert responder_refusal(fallback, identity="slack:U0ALICE", channel="slack", role=None) is None
    assert responder_refusal(fallback, identity="bob", channel="api", role="admin").code == "forbidden"


def test_a_person_listed_by_name_responds_with_each_identity():
    by_name = policy(["dana"])
    assert responder_refusal(by_name, identity="slack:U0DANA", channel="slack", role=None) is None
    assert responder_refusal(by_name, identity="dana", channel="web", role="viewer") is None
    assert responder_refusal(by_name, identity="alice", channel="api", role="admin") is not None


def test_slack_identities_count_only_through_slack():
    listed = policy(["slack:U0ALICE"])
    assert (
        "through Slack only"
        in responder_refusal(listed, identity="slack:U0ALICE", channel="api", role=None).reason
    )


def test_with_no_lists_at_all_airflow_users_respond_and_slack_users_do_not():
    open_policy = ResponderPolicy.from_config(None, ApproverPolicy())
    assert responder_refusal(open_policy, identity="carol", channel="api", role="user") is None
    assert responder_refusal(open_policy, identity="victor", channel="api", role="viewer") is not None
    assert (
        "no Slack responders"
        in responder_refusal(open_policy, identity="slack:U1", channel="slack", role=None).reason
    )


@pytest.mark.parametrize("raw", [{"default": []}, "alice", [""], [1]])
def test_a_malformed_variable_is_refused(raw):
    with pytest.raises(ResponderConfigError):
        policy(raw)


@pytest.mark.parametrize(
    ("action", "state", "escalated", "idle"),
    [
        ("acknowledge", "open", False, False),
        ("acknowledge", "acknowledged", False, True),
        ("escalate", "acknowledged", False, False),
        ("escalate", "open", True, True),
        ("resolve", "acknowledged", True, False),
        ("resolve", "resolved", False, True),
        ("acknowledge", "resolved", False, True),
    ],
)
def test_what_a_state_allows(action, state, escalated, idle):
    assert (state_refusal(action, state=state, escalated=escalated) is not None) is idle


def _click(action_id: str, value: str, user: str = "U0ALICE") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "actions": [{"action_id": action_id, "value": value}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_page_clicks_and_votes_are_told_apart():
    assert parse_block_action(_click("escalate", "inc-0123456789ab")) == IncidentAction(
        action="escalate", incident_id="inc-0123456789ab", user_id="U0ALICE"
    )
    assert isinstance(parse_block_action(_click("approve", "apr-0123456789ab")), BlockAction)
    with pytest.raises(InteractionPayloadError):
        parse_block_action(_click("resolve", "apr-0123456789ab"))
    with pytest.raises(InteractionPayloadError):
        parse_block_action(_click("resolve", "inc-0123456789ab", user="not valid"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("help", None, None, None)),
        ("help", ("help", None, None, None)),
        ("LIST", ("list", None, None, None)),
        ("declare PUMP-07B OVERHEATING", ("declare", "PUMP-07B", "OVERHEATING", None)),
        (
            "declare  PUMP-07B  OVERHEATING  hot  and loud ",
            ("declare", "PUMP-07B", "OVERHEATING", "hot  and loud"),
        ),
    ],
)
def test_incident_commands(text, expected):
    wanted = parse_incident_command(text)
    assert (wanted.verb, wanted.device_id, wanted.error, wanted.message) == expected


@pytest.mark.parametrize("text", ["declare", "declare X", "list all", "resolve inc-1", "help me"])
def test_bad_usage(text):
    with pytest.raises(CommandUsageError):
        parse_incident_command(text)


def test_a_slash_command_form_is_read_strictly():
    form = {
        "command": "/incident",
        "text": "list",
        "user_id": "U0ALICE",
        "channel_id": "C1",
        "response_url": "https://x",
    }
    command = parse_slash_command(urlencode(form).encode())
    assert (command.identity, command.text, command.channel_id) == ("slack:U0ALICE", "list", "C1")
    for broken in ({**form, "command": "incident"}, {**form, "text": "x" * 2001}, {"command": "/incident"}):
        with pytest.raises(InteractionPayloadError):
            parse_slash_command(urlencode(broken).encode())
    with pytest.raises(InteractionPayloadError):
        parse_slash_command(
            urlencode([("user_id", "U1"), ("user_id", "U2"), ("command", "/incident")]).encode()
        )


ALERT = Alert(device_id="PUMP-07B", error="PRESSURE_SPIKE_DETECTED")
ANALYSIS = Analysis(
    severity="critical",
    summary="Pressure spike",
    diagnosis="Valve stuck",
    recommended_action="restart_pump",
    confidence=0.8,
    analyzer="rules",
    runbook="pressure_spike",
)


def _buttons(blocks):
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_the_page_keeps_the_buttons_that_still_make_sense():
    assert _buttons(page_blocks(ALERT, ANALYSIS)) == []  # no incident id: a plain page
    assert _buttons(page_blocks(ALERT, ANALYSIS, incident_id="inc-0123456789ab")) == [
        "acknowledge",
        "escalate",
        "resolve",
    ]
    acked = page_blocks(
        ALERT, ANALYSIS, incident_id="inc-0123456789ab", state="acknowledged", acknowledged_by="slack:U0A"
    )
    assert _buttons(acked) == ["escalate", "resolve"] and "Acknowledged by <@U0A>" in json.dumps(acked)
    escalated = page_blocks(
        ALERT,
        ANALYSIS,
        incident_id="inc-0123456789ab",
        state="acknowledged",
        acknowledged_by="bob",
        escalated_by="bob",
    )
    assert _buttons(escalated) == ["resolve"]
    resolved = page_blocks(
        ALERT, ANALYSIS, incident_id="inc-0123456789ab", state="resolved", resolved_by="<b>"
    )
    assert _buttons(resolved) == [] and "Resolved by &lt;b&gt;" in json.dumps(resolved)
