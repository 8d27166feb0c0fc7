"""Slack interactivity requests: check Slack's request signature, then read a block_actions payload.

Pure Python (no Airflow): the API server's Slack routes call these on the raw request body. Besides
the Approve / Reject clicks, this reads the on-call page's Acknowledge / Escalate / Resolve clicks and
the `/incident` slash command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

from include import bounded_json

__all__ = [
    "COMMAND_USAGE",
    "DECISION_ACTIONS",
    "INCIDENT_ACTIONS",
    "MAX_SIGNATURE_AGE_SECONDS",
    "BlockAction",
    "Clock",
    "CommandUsageError",
    "IncidentAction",
    "IncidentCommand",
    "InteractionPayloadError",
    "SlackSignatureError",
    "SlashCommand",
    "parse_block_action",
    "parse_incident_command",
    "parse_slash_command",
    "verify_slack_signature",
]

# Slack's own recommendation: refuse requests signed more than five minutes ago (replays).
MAX_SIGNATURE_AGE_SECONDS = 60 * 5
# The Approve / Reject buttons' action ids; their `value` is the approval record id.
DECISION_ACTIONS = {"approve": "approve", "reject": "reject"}
# The on-call page's buttons; their `value` is the incident id.
INCIDENT_ACTIONS = ("acknowledge", "escalate", "resolve")
COMMAND_USAGE = (
    "Usage: `/incident declare <device_id> <error> [message…]` starts an incident · "
    "`/incident list` shows the open ones · `/incident help` shows this."
)

# Checked before anything else sees the values: `int()` would accept " 12", "1_2" and non-ASCII
# digits, and `hmac.compare_digest` raises on non-ASCII strings.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_SLACK_ID = re.compile(r"[A-Z0-9][A-Z0-9_]{0,31}")
_MAX_RECORD_ID = 64
_INCIDENT_ID = re.compile(r"inc-[0-9a-f]{12}")
# Device ids and error codes as the alert model bounds them, without spaces (they are words here).
_TRIGGER_ID = re.compile(r"[0-9A-Za-z.]{1,128}")
_WORD = re.compile(r"[^\s]{1,128}")
_MAX_COMMAND_TEXT = 2000


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


@dataclass(frozen=True)
class IncidentAction:
    """An Acknowledge, Escalate or Resolve click on the on-call page.

    :param action: ``acknowledge``, ``escalate`` or ``resolve``.
    :param incident_id: The incident id carried in the button's value.
    :param user_id: The Slack id of the person who clicked.
    :param response_url: Where Slack accepts a reply to the clicker, when Slack sent one.
    """

    action: str
    incident_id: str
    user_id: str
    response_url: str | None = None
    team_id: str | None = None

    @property
    def identity(self) -> str:
        """Return the responder identity of the clicker (`slack:<user id>`)."""
        return f"slack:{self.user_id}"


class CommandUsageError(ValueError):
    """A slash command that does not follow the usage; answer with COMMAND_USAGE, start nothing."""


@dataclass(frozen=True)
class SlashCommand:
    """A slash command as Slack posts it (form fields), verified and bounded."""

    command: str
    text: str
    user_id: str
    channel_id: str | None = None
    response_url: str | None = None
    # Slack's id of this one invocation: a replay of the same request carries the same one.
    trigger_id: str | None = None
    team_id: str | None = None

    @property
    def identity(self) -> str:
        """Return the responder identity of the caller (`slack:<user id>`)."""
        return f"slack:{self.user_id}"


@dataclass(frozen=True)
class IncidentCommand:
    """What `/incident …` asks for: ``declare`` (with device, error, message), ``list`` or ``help``."""

    verb: str
    device_id: str | None = None
    error: str | None = None
    message: str | None = None


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


def _form(body: bytes) -> dict[str, list[str]]:
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InteractionPayloadError("the body is not a form") from exc


def _user_id(value: Any) -> str:
    if not isinstance(value, str) or not _SLACK_ID.fullmatch(value):
        raise InteractionPayloadError("payload has no valid user id")
    return value


def parse_block_action(body: bytes) -> BlockAction | IncidentAction | None:
    """Read a button click from a verified form body; None for any other interaction.

    Approve / Reject give a BlockAction, the page's Acknowledge / Escalate / Resolve an IncidentAction.
    """
    form = _form(body)
    values = form.get("payload")
    if not values or len(values) != 1:
        raise InteractionPayloadError("the form has no single payload field")
    try:
        payload = bounded_json.loads(values[0])
    except bounded_json.TooDeep as exc:
        raise InteractionPayloadError("payload nests too deeply") from exc
    except ValueError as exc:
        raise InteractionPayloadError("payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise InteractionPayloadError("payload is not a JSON object")
    if payload.get("type") != "block_actions":
        return None
    action = _decision_action(payload.get("actions"))
    user = payload.get("user")
    response_url = payload.get("response_url")
    response_url = response_url if isinstance(response_url, str) and response_url else None
    if action is not None and action["action_id"] in INCIDENT_ACTIONS:
        incident_id = action.get("value")
        if not isinstance(incident_id, str) or not _INCIDENT_ID.fullmatch(incident_id):
            raise InteractionPayloadError("the button carries no incident id")
        return IncidentAction(
            action=action["action_id"],
            incident_id=incident_id,
            user_id=_user_id(user.get("id") if isinstance(user, dict) else None),
            response_url=response_url,
            team_id=_team_id(payload),
        )
    if action is None:
        # Another element of the message (e.g. the "Open record" link button): nothing to decide.
        return None
    record_id = action.get("value")
    if not isinstance(record_id, str) or not record_id or len(record_id) > _MAX_RECORD_ID:
        raise InteractionPayloadError("the button carries no approval record id")
    user_id = _user_id(user.get("id") if isinstance(user, dict) else None)
    return BlockAction(
        decision=DECISION_ACTIONS[action["action_id"]],
        record_id=record_id,
        user_id=user_id,
        team_id=_team_id(payload),
        response_url=response_url,
    )


def _team_id(payload: dict[str, Any]) -> str | None:
    team = payload.get("team")
    team_id = team.get("id") if isinstance(team, dict) else None
    return team_id if isinstance(team_id, str) and _SLACK_ID.fullmatch(team_id) else None


def _decision_action(actions: Any) -> dict[str, Any] | None:
    if not isinstance(actions, list):
        raise InteractionPayloadError("block_actions payload has no actions list")
    for action in actions:
        if isinstance(action, dict) and (
            action.get("action_id") in DECISION_ACTIONS or action.get("action_id") in INCIDENT_ACTIONS
        ):
            return action
    return None


def parse_slash_command(body: bytes) -> SlashCommand:
    """Read a slash command from a verified form body (Slack posts its fields form-encoded)."""
    form = _form(body)

    def field(name: str, *, required: bool = False) -> str | None:
        values = form.get(name)
        if not values:
            if required:
                raise InteractionPayloadError(f"the form has no {name} field")
            return None
        if len(values) != 1:
            raise InteractionPayloadError(f"the form has more than one {name} field")
        return values[0]

    command = field("command", required=True) or ""
    if not command.startswith("/") or len(command) > 32:
        raise InteractionPayloadError("command is not a slash command")
    text = field("text") or ""
    if len(text) > _MAX_COMMAND_TEXT:
        raise InteractionPayloadError(f"the command text is longer than {_MAX_COMMAND_TEXT} characters")
    channel_id = field("channel_id")
    trigger_id, team_id = field("trigger_id"), field("team_id")
    return SlashCommand(
        command=command,
        text=text,
        user_id=_user_id(field("user_id", required=True)),
        channel_id=channel_id if channel_id and _SLACK_ID.fullmatch(channel_id) else None,
        response_url=field("response_url") or None,
        trigger_id=trigger_id if trigger_id and _TRIGGER_ID.fullmatch(trigger_id) else None,
        team_id=team_id if team_id and _SLACK_ID.fullmatch(team_id) else None,
    )


def parse_incident_command(text: str) -> IncidentCommand:
    """Read `/incident declare <device_id> <error> [message…]`, `list` or `help`; raise CommandUsageError."""
    words = text.split(None, 3)
    verb = words[0].lower() if words else "help"
    if verb == "help" and len(words) <= 1:
        return IncidentCommand(verb="help")
    if verb == "list" and len(words) == 1:
        return IncidentCommand(verb="list")
    if verb == "declare" and len(words) >= 3 and all(_WORD.fullmatch(w) for w in words[1:3]):
        message = words[3].strip() if len(words) == 4 else None
        return IncidentCommand(verb="declare", device_id=words[1], error=words[2], message=message or None)
    raise CommandUsageError(f"not a valid /incident command: {text[:80]!r}")
