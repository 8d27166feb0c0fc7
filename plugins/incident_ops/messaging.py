"""Deliver an incident's messages: one Slack thread per incident, every message kept in the outbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from incident_ops.hooks.slack import IncidentSlackHook
from include.names import SLACK_CONN_ID
from include.store import IncidentStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """Where a message went: posted to Slack (channel, ts) or left in the outbox."""

    key: str
    sent: bool
    channel: str
    ts: str | None = None


def deliver(
    store: IncidentStore,
    *,
    incident_id: str,
    key: str,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    slack_conn_id: str = SLACK_CONN_ID,
) -> Delivery:
    """Post a message in the incident's thread, once per `key`, or leave it in the outbox.

    The first message posted for an incident starts its thread; later ones reply in it. The text is
    redacted here, for every message; blocks are redacted where they are rendered (`slack_blocks`).
    """
    from include.redaction import redact_value

    text = redact_value(text)
    row = store.enqueue_message(key=key, incident_id=incident_id, channel=channel, text=text, blocks=blocks)
    if row["state"] == "sent":
        log.info("Message %s was already posted (ts %s)", key, row["slack_ts"])
        return Delivery(key=key, sent=True, channel=row["channel"], ts=row["slack_ts"])
    if not IncidentSlackHook.is_configured(slack_conn_id):
        log.warning(
            "No Slack connection %r: message %s kept in the incident store's outbox, not sent",
            slack_conn_id,
            key,
        )
        return Delivery(key=key, sent=False, channel=channel)
    incident = store.get_incident(incident_id)
    thread_channel, thread_ts = incident["slack_channel"], incident["slack_ts"]
    ref = IncidentSlackHook(slack_conn_id=slack_conn_id).post_message(
        channel=thread_channel or channel, text=text, blocks=blocks, thread_ts=thread_ts
    )
    if thread_ts is None:
        store.set_thread(incident_id, channel=ref.channel, ts=ref.ts)
    store.mark_message(key, state="sent", slack_ts=ref.ts, thread_ts=thread_ts)
    return Delivery(key=key, sent=True, channel=ref.channel, ts=ref.ts)


def update(
    *,
    channel: str,
    ts: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    slack_conn_id: str = SLACK_CONN_ID,
) -> bool:
    """Replace a posted message (the approval request once decided); False when Slack is not configured."""
    if not IncidentSlackHook.is_configured(slack_conn_id):
        return False
    IncidentSlackHook(slack_conn_id=slack_conn_id).update_message(
        channel=channel, ts=ts, text=text, blocks=blocks
    )
    return True
