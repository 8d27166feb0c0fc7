"""The `/incident` slash command: declare an incident, list the open ones, show the usage.

Slack posts slash commands form-encoded and signed like interactions; the same gate checks them
(`routes_slack.verified_slack_body`). Every answer is ephemeral, to the person who typed the command,
and comes within Slack's 3 seconds: `declare` hands the alert to the intake, as every other source
does (`alert_intake.declare`), and the run does the rest.
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from incident_ops.api.routes_slack import _error, verified_slack_body
from include.names import DAG_ID
from include.redaction import redact_value
from include.slack_blocks import mrkdwn_escape
from include.slack_interactions import (
    COMMAND_USAGE,
    CommandUsageError,
    IncidentCommand,
    InteractionPayloadError,
    SlashCommand,
    parse_incident_command,
    parse_slash_command,
)
from include.vocabulary import Source

log = logging.getLogger(__name__)
router = APIRouter(tags=["slack"])

MAX_LISTED = 20


def _clean(text: str) -> str:
    return mrkdwn_escape(redact_value(text))


def _answer(text: str) -> JSONResponse:
    return JSONResponse({"response_type": "ephemeral", "text": text})


@router.post(
    "/slack/commands",
    responses={
        200: {"description": "Answered; `text` is what the person who typed the command sees"},
        400: {"description": "Signed, but not a readable slash command"},
        401: {"description": "Missing, malformed, stale or wrong Slack signature"},
        403: {"description": "From another Slack workspace than the configured `team_id`"},
        413: {"description": "Body larger than 64 KiB"},
        503: {"description": "No Slack signing secret is configured"},
    },
)
async def slack_commands(request: Request) -> Response:
    """Receive `/incident declare <device_id> <error> [message…]`, `/incident list`, `/incident help`."""
    verified = await verified_slack_body(request)
    if isinstance(verified, Response):
        return verified
    body, settings = verified
    try:
        command = parse_slash_command(body)
    except InteractionPayloadError as exc:
        return _error(status.HTTP_400_BAD_REQUEST, f"malformed slash command: {exc}")
    if settings.team_id and command.team_id != settings.team_id:
        log.warning("Refused /incident from workspace %s", command.team_id)
        return _error(status.HTTP_403_FORBIDDEN, "the command comes from another Slack workspace")
    try:
        wanted = parse_incident_command(command.text)
    except CommandUsageError:
        return _answer(COMMAND_USAGE)
    if wanted.verb == "help":
        return _answer(COMMAND_USAGE)
    return _answer(await run_in_threadpool(partial(run_command, command, wanted, body=body)))


def run_command(command: SlashCommand, wanted: IncidentCommand, *, body: bytes) -> str:
    """Run `declare` or `list` for a responder; return the answer's text."""
    from incident_ops import config
    from include.responders import responder_refusal

    try:
        refusal = responder_refusal(
            config.responder_policy(), identity=command.identity, channel="slack", role=None
        )
    except ValueError as exc:
        log.error("The responders configuration is invalid: %s", exc)
        return "The responders configuration is invalid; ask an Airflow admin to fix it."
    if refusal is not None:
        log.warning("Refused /incident %s from %s: %s", wanted.verb, command.identity, refusal.reason)
        return f"You may not use `/incident {wanted.verb}`: {mrkdwn_escape(refusal.reason)}."
    try:
        return declare(command, wanted, body=body) if wanted.verb == "declare" else list_open()
    except Exception:
        log.exception("/incident %s failed", wanted.verb)
        return f"`/incident {wanted.verb}` failed because of an error; please try again."


def declare(command: SlashCommand, wanted: IncidentCommand, *, body: bytes) -> str:
    """Hand the declared incident to the intake (source `slack`, the declarer on the timeline)."""
    from pydantic import ValidationError

    from incident_ops.alert_intake import declare as declare_incident
    from incident_ops.links import run_url_for
    from include.errors import IntakeRefused
    from include.models import Alert

    conf: dict[str, Any] = {"device_id": wanted.device_id, "error": wanted.error, "source": Source.SLACK}
    if wanted.message:
        conf["message"] = wanted.message
    try:
        alert = Alert.model_validate(conf)
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e.get("loc"))
        return f"Nothing was started: {mrkdwn_escape(fields)} out of bounds. {COMMAND_USAGE}"
    # Slack's trigger_id names this one invocation; a replay within the signature's window carries
    # it again (or, without one, the very same signed body), so it finds the incident it declared.
    request_key = command.trigger_id or hashlib.sha256(body).hexdigest()
    try:
        result = declare_incident(alert, declarer=command.identity, request_key=request_key)
    except IntakeRefused as exc:
        log.warning("/incident declare from %s refused: %s", command.identity, exc.detail)
        return f"Nothing was started: {mrkdwn_escape(exc.detail)}."
    incident_id, run_id = result["incident_id"], result["dag_run_id"]
    what = f"{_clean(alert.error)} on {_clean(alert.device_id)}"
    link = f"<{run_url_for(DAG_ID, run_id)}|Open the run in Airflow>"
    if result["deduplicated"]:
        return f"Incident `{incident_id}` is already open for {what}. {link}"
    log.info("%s declared incident %s (run %s)", command.identity, incident_id, run_id)
    return f"Incident `{incident_id}` declared: {what}. {link}"


def list_open() -> str:
    """Describe the incidents that are not resolved yet, newest first."""
    from incident_ops.hooks.incident_store import get_store
    from include.vocabulary import IncidentState

    store = get_store()
    ids = [
        *store.incidents.ids(state=IncidentState.OPEN, limit=MAX_LISTED),
        *store.incidents.ids(state=IncidentState.ACKNOWLEDGED, limit=MAX_LISTED),
    ][:MAX_LISTED]
    if not ids:
        return "No open incidents."
    lines = []
    for incident_id in ids:
        incident = store.incidents.get(incident_id)
        who = f" by {mrkdwn_escape(incident.acknowledged_by)}" if incident.acknowledged_by else ""
        lines.append(
            f"• `{incident_id}` {_clean(incident.error)} on {_clean(incident.device_id)}"
            f" · {incident.severity or 'unrated'} · {incident.state}{who}"
        )
    return "Open incidents:\n" + "\n".join(lines)
