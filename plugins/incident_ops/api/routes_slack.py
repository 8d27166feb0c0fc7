"""Slack interactivity: the approval request's Approve / Reject and the on-call page's Acknowledge /
Escalate / Resolve buttons.

Order matters: the size is checked before the body is read, the signature on the raw body before
anything is parsed, and only then is the vote recorded (through `record_decision`, like every
channel). Slack wants an answer within 3 seconds, so the vote gets a budget; a slower vote still
completes and its outcome follows through the interaction's `response_url`.

An unknown record id is answered 200 with a text saying so: a non-200 answer only makes Slack show a
generic error icon on the button, while the text reaches the person who clicked.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from fastapi import APIRouter, BackgroundTasks, Request, status
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from incident_ops.api.body import BodyTooLarge, declared_too_large, read_limited
from include.errors import Refused
from include.names import SLACK_CONN_ID, SLACK_SIGNING_SECRET_ENV, SLACK_TEAM_ID_ENV
from include.slack_blocks import mrkdwn_escape
from include.slack_interactions import (
    BlockAction,
    Clock,
    IncidentAction,
    InteractionPayloadError,
    SlackSignatureError,
    parse_block_action,
    verify_slack_signature,
)
from include.store import NotFound

log = logging.getLogger(__name__)
router = APIRouter(tags=["slack"])

MAX_BODY_BYTES = 64 * 1024
# Slack gives up after 3 s; leave room for the network both ways.
ANSWER_BUDGET_SECONDS = 2.0
REPLY_TIMEOUT_SECONDS = 5
# Where Slack's response_url may point; the Slack connection's base_url host is trusted as well
# (a proxy, or a fake Slack in tests).
SLACK_REPLY_ORIGINS = frozenset({"https://hooks.slack.com", "https://hooks.slack-gov.com"})
# Tests replace this with a fixed clock; None means the system clock.
clock: Clock | None = None


@dataclass(frozen=True)
class SlackSettings:
    """What the route needs from the Slack connection and the environment."""

    signing_secret: str | None
    reply_origins: frozenset[str]
    proxy: str | None = None
    # The one Slack workspace allowed to reach us, when configured: requests from another are refused.
    team_id: str | None = None


def slack_settings() -> SlackSettings:
    """Read the signing secret (connection extra first, then the environment) and reply targets."""
    from incident_ops.connections import optional_connection

    conn = optional_connection(SLACK_CONN_ID)
    extra: dict = conn.extra_dejson if conn is not None else {}
    secret = extra.get("signing_secret") or os.environ.get(SLACK_SIGNING_SECRET_ENV)
    origins = set(SLACK_REPLY_ORIGINS)
    base = urlsplit(str(extra.get("base_url") or ""))
    if base.scheme in ("http", "https") and base.netloc:
        origins.add(f"{base.scheme}://{base.netloc}")
    proxy = extra.get("proxy")
    team_id = extra.get("team_id") or os.environ.get(SLACK_TEAM_ID_ENV)
    return SlackSettings(
        signing_secret=secret if isinstance(secret, str) and secret.strip() else None,
        reply_origins=frozenset(origins),
        proxy=proxy if isinstance(proxy, str) and proxy else None,
        team_id=team_id if isinstance(team_id, str) and team_id.strip() else None,
    )


def _error(code: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=code, content={"detail": detail})


def decide(action: BlockAction) -> str:
    """Record the click as a vote and return the text for the person who clicked."""
    from incident_ops import approval_lifecycle
    from incident_ops.hooks.incident_store import get_store

    try:
        record = approval_lifecycle.decide(
            get_store(), action.record_id, identity=action.identity, channel="slack", decision=action.decision
        )
    except NotFound:
        return (
            f"This approval request ({mrkdwn_escape(action.record_id)}) does not exist (any more); "
            "nothing was recorded."
        )
    except Refused as refused:
        return f"Your vote was not counted: {mrkdwn_escape(refused.reason)}."
    except Exception:
        log.exception("Could not record the Slack vote on approval %s", action.record_id)
        return "Your vote could not be recorded because of an error; please vote on the record's page."
    action_name = mrkdwn_escape(record.action)
    if record.decided:
        return f"Your vote was counted: `{action_name}` is *{mrkdwn_escape(record.state)}*."
    return (
        f"Your vote was counted: {record.approval_count} of {record.quorum} approvals for `{action_name}`. "
        "The request stays open until the others needed have approved."
    )


def act_on_incident(action: IncidentAction) -> str:
    """Take an Acknowledge, Escalate or Resolve click and return the text for the person who clicked."""
    from incident_ops import incident_lifecycle
    from incident_ops.hooks.incident_store import get_store

    incident_id = mrkdwn_escape(action.incident_id)
    try:
        incident_lifecycle.act(
            get_store(), action.incident_id, action.action, identity=action.identity, channel="slack"
        )
    except NotFound:
        return f"Incident {incident_id} does not exist; nothing was done."
    except Refused as refused:
        if refused.code == "conflict":
            return f"Nothing changed: {mrkdwn_escape(refused.reason)}."
        return f"You may not {action.action} incident {incident_id}: {mrkdwn_escape(refused.reason)}."
    except Exception:
        log.exception("Could not %s incident %s from Slack", action.action, action.incident_id)
        return f"Could not {action.action} incident {incident_id} because of an error; please try again."
    return {
        "acknowledge": f"You acknowledged incident {incident_id}.",
        "escalate": f"You escalated incident {incident_id}: the secondary on-call is paged.",
        "resolve": f"You resolved incident {incident_id}; its run finishes without the fix.",
    }[action.action]


def post_reply(response_url: str | None, text: str, settings: SlackSettings) -> None:
    """Show `text` to the person who clicked (ephemeral), through the interaction's response_url."""
    if not response_url:
        return
    target = urlsplit(response_url)
    if f"{target.scheme}://{target.netloc}" not in settings.reply_origins:
        log.warning("Not replying to an untrusted response_url host %s", target.netloc)
        return
    from slack_sdk.webhook import WebhookClient

    try:
        response = WebhookClient(response_url, timeout=REPLY_TIMEOUT_SECONDS, proxy=settings.proxy).send(
            text=text, response_type="ephemeral", replace_original=False
        )
    except Exception as exc:
        # The vote is recorded; a lost reply is only logged.
        log.warning("Could not reply through response_url: %s", type(exc).__name__)
        return
    if response.status_code != 200:
        log.warning("Slack refused the reply through response_url: HTTP %s", response.status_code)


async def _reply_when_done(
    vote: asyncio.Future, action: BlockAction | IncidentAction, settings: SlackSettings
) -> None:
    text = await vote
    await run_in_threadpool(post_reply, action.response_url, text, settings)


@router.post(
    "/slack/interactions",
    responses={
        200: {"description": "Acknowledged; `text` says what happened to the vote"},
        400: {"description": "Signed, but not a readable interaction payload"},
        401: {"description": "Missing, malformed, stale or wrong Slack signature"},
        413: {"description": "Body larger than 64 KiB"},
        503: {"description": "No Slack signing secret is configured"},
    },
)
async def slack_interactions(request: Request, background: BackgroundTasks) -> Response:
    """Receive a Slack interaction (form field `payload`): votes, and the on-call page's buttons."""
    verified = await verified_slack_body(request)
    if isinstance(verified, Response):
        return verified
    body, settings = verified
    try:
        action = parse_block_action(body)
    except InteractionPayloadError as exc:
        return _error(status.HTTP_400_BAD_REQUEST, f"malformed interaction payload: {exc}")
    if action is None:
        return Response(status_code=status.HTTP_200_OK)
    if settings.team_id and action.team_id != settings.team_id:
        log.warning("Refused a Slack click from workspace %s", action.team_id)
        return _error(status.HTTP_403_FORBIDDEN, "the click comes from another Slack workspace")

    work: partial[str]
    if isinstance(action, IncidentAction):
        work, pending = partial(act_on_incident, action), "Received; the outcome will follow here."
    else:
        work, pending = (
            partial(decide, action),
            "Your vote was received and is still being recorded; the outcome will follow here.",
        )
    vote = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        text = await asyncio.wait_for(asyncio.shield(vote), ANSWER_BUDGET_SECONDS)
    except TimeoutError:
        text = pending
        background.add_task(_reply_when_done, vote, action, settings)
    else:
        background.add_task(post_reply, action.response_url, text, settings)
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})


async def verified_slack_body(request: Request) -> tuple[bytes, SlackSettings] | Response:
    """Return the body of a request Slack provably signed (and the settings), or the error to answer.

    The size is checked before the body is read and the signature on the raw body before anything
    parses it: the one gate of every Slack route.
    """
    if declared_too_large(request.headers, MAX_BODY_BYTES):
        return _error(status.HTTP_413_CONTENT_TOO_LARGE, "request body too large (64 KiB at most)")
    settings = await run_in_threadpool(slack_settings)
    if settings.signing_secret is None:
        return _error(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Slack interactivity is not configured: set signing_secret in the extra of connection "
            f"{SLACK_CONN_ID}, or the {SLACK_SIGNING_SECRET_ENV} environment variable",
        )
    try:
        body = await read_limited(request.receive, MAX_BODY_BYTES)
    except BodyTooLarge:
        return _error(status.HTTP_413_CONTENT_TOO_LARGE, "request body too large (64 KiB at most)")
    try:
        verify_slack_signature(
            body=body,
            timestamp=request.headers.get("x-slack-request-timestamp"),
            signature=request.headers.get("x-slack-signature"),
            signing_secret=settings.signing_secret,
            clock=clock,
        )
    except SlackSignatureError as exc:
        log.warning("Refused a Slack request: %s", exc)
        return _error(status.HTTP_401_UNAUTHORIZED, f"invalid Slack request signature: {exc}")
    return body, settings
