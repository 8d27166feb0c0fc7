"""Play Slack's side of interactivity in tests: build a button click and sign it as Slack does.

Slack posts an interaction as `application/x-www-form-urlencoded` with one field, `payload`, holding
the JSON of the interaction. It signs the raw body with the app's signing secret: the header
`X-Slack-Signature` is `v0=` + hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}")) and
`X-Slack-Request-Timestamp` is the Unix time in seconds
(https://api.slack.com/authentication/verifying-requests-from-slack).

Test-side only, and written independently of the product's verifier (which uses slack_sdk), so a
test signed here checks the product against the published scheme rather than against itself.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "SignedRequest",
    "block_actions_payload",
    "find_button",
    "sign",
    "signed_click",
    "slack_signature",
]

DEFAULT_TEAM = {"id": "T0FAKETEAM", "domain": "fake-workspace"}
DEFAULT_APP_ID = "A0INCIDENT"


@dataclass(frozen=True)
class SignedRequest:
    """A request body and the headers Slack sends with it."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return Slack's v0 signature of `body` sent at `timestamp`."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Return the headers of a Slack request carrying `body` (signed now unless `timestamp` is given)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
    }


def find_button(message: Mapping[str, Any], action_id: str) -> tuple[str, dict[str, Any]]:
    """Return (block_id, element) of the button `action_id` in a posted message; KeyError if absent."""
    for block in message.get("blocks") or []:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements") or []:
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return block.get("block_id", ""), copy.deepcopy(element)
    raise KeyError(f"no button {action_id!r} in the message")


def block_actions_payload(
    *,
    message: Mapping[str, Any],
    channel_id: str,
    action_id: str,
    user_id: str,
    username: str | None = None,
    team: Mapping[str, str] = DEFAULT_TEAM,
    response_url: str | None = None,
    action_ts: float | None = None,
) -> dict[str, Any]:
    """Return the `block_actions` payload Slack sends when `user_id` clicks a button of `message`.

    The clicked button (its value, block id, text and style) is taken from the message as it was
    posted, so the click carries exactly what the bot put on the button.
    """
    block_id, button = find_button(message, action_id)
    clicked_at = time.time() if action_ts is None else action_ts
    name = username or user_id.lower()
    message_ts = str(message["ts"])
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": button.get("text", {"type": "plain_text", "text": action_id}),
        "type": "button",
        "action_ts": f"{clicked_at:.6f}",
    }
    if "value" in button:
        action["value"] = button["value"]
    if "style" in button:
        action["style"] = button["style"]
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team["id"]},
        "api_app_id": DEFAULT_APP_ID,
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": f"{int(clicked_at)}.1234567890.abcdef0123456789",
        "team": dict(team),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "privategroup"},
        "message": copy.deepcopy(dict(message)),
        "state": {"values": {}},
        "response_url": response_url or f"https://hooks.slack.com/actions/{team['id']}/1/fakeresponse",
        "actions": [action],
    }


def signed_click(
    secret: str,
    *,
    message: Mapping[str, Any],
    channel_id: str,
    action_id: str,
    user_id: str,
    response_url: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """Return the signed form request of a button click, byte for byte what the endpoint receives."""
    payload = block_actions_payload(
        message=message,
        channel_id=channel_id,
        action_id=action_id,
        user_id=user_id,
        response_url=response_url,
    )
    # Slack sends compact JSON in the form field.
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode("ascii")
    return SignedRequest(body=body, headers=sign(body, secret, timestamp=timestamp), payload=payload)
