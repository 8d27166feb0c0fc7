"""Slack interactivity requests: check Slack's request signature, then read a block_actions payload.

Pure Python (no Airflow): the API server's Slack route calls these on the raw request body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

__all__ = [
    "DECISION_ACTIONS",
    "MAX_SIGNATURE_AGE_SECONDS",
    "BlockAction",
    "Clock",
    "InteractionPayloadError",
    "SlackSignatureError",
    "parse_block_action",
    "verify_slack_signature",
]

# Slack's own recommendation: refuse requests signed more than five minutes ago (replays).
MAX_SIGNATURE_AGE_SECONDS = 60 * 5
# The Approve / Reject buttons' action ids; their `value` is the approval record id.
DECISION_ACTIONS = {"approve": "approve", "reject": "reject"}

# Checked before anything else sees the values: `int()` would accept " 12", "1_2" and non-ASCII
# digits, and `hmac.compare_digest` raises on non-ASCII strings.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_SLACK_ID = re.compile(r"[A-Z0-9][A-Z0-9_]{0,31}")
_MAX_RECORD_ID = 64


class Clock(Protocol):
    """What the verifier asks for the time (slack_sdk's `Clock` fits; tests inject a fixed one)."""

    def now(self) -> float:
        """Return the current Unix time in seconds."""
        ...


class SlackSignatureError(Exception):
    """The request is not provably from Slack; answer 401 and read nothing of it."""


class InteractionPayloadError(ValueError):
    """A signed request whose payload is not a readable interaction; answer 400."""


@dataclass(frozen=True)
class BlockAction:
    """An Approve or Reject click.

    :param decision: ``approve`` or ``reject``.
    :param record_id: The approval record id carried in the button's value.
    :param user_id: The Slack id of the person who clicked.
    :param team_id: Their workspace id, when Slack sent one.
    :param response_url: Where Slack accepts a reply to the clicker, when Slack sent one.
    """

    decision: str
    record_id: str
    user_id: str
    team_id: str | None = None
    response_url: str | None = None

    @property
    def identity(self) -> str:
        """Return the approver identity of the clicker (`slack:<user id>`)."""
        return f"slack:{self.user_id}"


def verify_slack_signature(
    *,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    signing_secret: str,
    clock: Clock | None = None,
) -> None:
    """Raise SlackSignatureError unless `body` carries Slack's valid, fresh v0 signature."""
    from slack_sdk.signature import Clock as SystemClock
    from slack_sdk.signature import SignatureVerifier

    if not timestamp or not signature:
        raise SlackSignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SlackSignatureError("malformed X-Slack-Request-Timestamp header")
    if not _SIGNATURE.fullmatch(signature):
        raise SlackSignatureError("malformed X-Slack-Signature header")
    clock = clock or SystemClock()
    if abs(clock.now() - int(timestamp)) > MAX_SIGNATURE_AGE_SECONDS:
        raise SlackSignatureError("stale X-Slack-Request-Timestamp (more than five minutes off)")
    try:
        # The verifier only calls now(): any Clock of ours serves as slack_sdk's.
        valid = SignatureVerifier(signing_secret, clock=cast(SystemClock, clock)).is_valid(
            body=body, timestamp=timestamp, signature=signature
        )
    except UnicodeDecodeError:
        # Slack signs UTF-8 text; anything else cannot be one of its requests.
        valid = False
    if not valid:
        raise SlackSignatureError("signature mismatch")


def parse_block_action(body: bytes) -> BlockAction | None:
    """Read an Approve or Reject click from a verified form body; None for any other interaction."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InteractionPayloadError("the body is not a form") from exc
    values = form.get("payload")
    if not values or len(values) != 1:
        raise InteractionPayloadError("the form has no single payload field")
    try:
        payload = json.loads(values[0])
    except json.JSONDecodeError as exc:
        raise InteractionPayloadError("payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise InteractionPayloadError("payload is not a JSON object")
    if payload.get("type") != "block_actions":
        return None
    action = _decision_action(payload.get("actions"))
    if action is None:
        # Another element of the message (e.g. the "Open record" link button): nothing to decide.
        return None
    record_id = action.get("value")
    if not isinstance(record_id, str) or not record_id or len(record_id) > _MAX_RECORD_ID:
        raise InteractionPayloadError("the button carries no approval record id")
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, str) or not _SLACK_ID.fullmatch(user_id):
        raise InteractionPayloadError("payload has no valid user id")
    team = payload.get("team")
    team_id = team.get("id") if isinstance(team, dict) else None
    response_url = payload.get("response_url")
    return BlockAction(
        decision=DECISION_ACTIONS[action["action_id"]],
        record_id=record_id,
        user_id=user_id,
        team_id=team_id if isinstance(team_id, str) else None,
        response_url=response_url if isinstance(response_url, str) and response_url else None,
    )


def _decision_action(actions: Any) -> dict[str, Any] | None:
    if not isinstance(actions, list):
        raise InteractionPayloadError("block_actions payload has no actions list")
    for action in actions:
        if isinstance(action, dict) and action.get("action_id") in DECISION_ACTIONS:
            return action
    return None
