"""Deliver an incident's messages: one Slack thread per incident, every message kept in the outbox.

Each message is posted at most once per idempotency key, even when Slack's answer is lost: the post
carries the key in its message metadata, the outbox row says ``posting`` before the call, and a retry
of a row in that state first looks the message up in the thread (or channel) instead of posting again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from incident_ops.hooks.errors import SlackDeliveryError, SlackRateLimitedError
from incident_ops.integrations import slack_on
from include.names import SLACK_CONN_ID
from include.store import IncidentStore
from include.vocabulary import OutboxState, TimelineKind

if TYPE_CHECKING:
    from incident_ops.hooks.slack import IncidentSlackHook, SlackMessageRef

log = logging.getLogger(__name__)

# Transient failures (5xx, timeouts, resets) are retried here, a few times and briefly, with a look-up
# before each new post; what still fails goes to the task's own retries (SLACK_RETRY in the DAG).
ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
# A thread starter is looked up in the channel's history from a little before its row was queued.
_CLOCK_SLACK = timedelta(minutes=5)
# Outbox states a message may have reached Slack from: a retry looks before it posts.
_MAYBE_POSTED = ("posting", "undelivered")


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
    redacted and escaped here, for every message (so no alert can mention @channel or hide a link);
    blocks are redacted and escaped where they are rendered (`slack_blocks`).
    A message Slack refused, or that failed on the task's last try, is marked undelivered in the
    outbox and on the incident's timeline before the error is raised.
    """
    text = safe_text(text)
    row = store.outbox.enqueue(key=key, incident_id=incident_id, channel=channel, text=text, blocks=blocks)
    if row["state"] == OutboxState.SENT:
        log.info("Message %s was already posted (ts %s)", key, row["slack_ts"])
        return Delivery(key=key, sent=True, channel=row["channel"], ts=row["slack_ts"])
    if not slack_on(slack_conn_id):
        log.warning(
            "No Slack connection %r: message %s kept in the incident store's outbox, not sent",
            slack_conn_id,
            key,
        )
        return Delivery(key=key, sent=False, channel=channel)
    from incident_ops.hooks.slack import IncidentSlackHook  # only now: the provider is a slow import

    # The SDK must not re-send a post on its own after a reset: only this loop may, after a look-up.
    hook = IncidentSlackHook(slack_conn_id=slack_conn_id, max_connection_retries=0)
    maybe_posted = row["state"] in _MAYBE_POSTED
    for attempt in range(1, ATTEMPTS + 1):
        try:
            ref = _post_once(hook, store, row, text=text, blocks=blocks, maybe_posted=maybe_posted)
        except SlackDeliveryError as error:
            maybe_posted = True
            retry_here = attempt < ATTEMPTS and not error.permanent
            retry_here = retry_here and not isinstance(error, SlackRateLimitedError)
            if retry_here:
                time.sleep(BACKOFF_SECONDS * attempt)
                continue
            _record_failure(store, incident_id, key, error)
            raise
        return Delivery(key=key, sent=True, channel=ref.channel, ts=ref.ts)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _post_once(
    hook: IncidentSlackHook,
    store: IncidentStore,
    row: dict[str, Any],
    *,
    text: str,
    blocks: list[dict[str, Any]] | None,
    maybe_posted: bool,
) -> SlackMessageRef:
    """Find the message if an earlier attempt may have posted it, else post it; record where it is."""
    key, incident_id = row["key"], row["incident_id"]
    incident = store.incidents.get(incident_id)
    thread_ts = incident.slack_ts
    target = incident.slack_channel or row["channel"]
    # A thread's replies include its parent, so a starter whose thread was recorded is found too.
    ref = _find(hook, row, target, thread_ts) if maybe_posted else None
    if ref is not None:
        log.info("Message %s was posted before (ts %s); not posting it again", key, ref.ts)
    else:
        store.outbox.mark(key, state="posting")
        ref = hook.post_message(channel=target, text=text, blocks=blocks, thread_ts=thread_ts, key=key)
    if thread_ts is None or ref.ts == thread_ts:
        store.incidents.set_thread(incident_id, channel=ref.channel, ts=ref.ts)
        thread_ts = None if ref.ts == thread_ts else thread_ts
    store.outbox.mark(key, state=OutboxState.SENT, slack_ts=ref.ts, thread_ts=thread_ts)
    return ref


def _find(
    hook: IncidentSlackHook, row: dict[str, Any], channel: str, thread_ts: str | None
) -> SlackMessageRef | None:
    """Look the row's message up in the thread, or (no thread) in the channel since it was queued."""
    oldest = None
    if thread_ts is None:
        oldest = f"{(row['created_at'] - _CLOCK_SLACK).timestamp():.6f}"
    return hook.find_message(channel=channel, key=row["key"], thread_ts=thread_ts, oldest=oldest)


def _record_failure(store: IncidentStore, incident_id: str, key: str, error: SlackDeliveryError) -> None:
    """Mark the message undelivered when no retry will come; otherwise note why it is still pending."""
    final = error.permanent or not _task_retries_left()
    if not final:
        store.outbox.mark(key, state="posting", note=f"retrying after {error.error_code}")
        return
    store.outbox.mark(key, state="undelivered", note=error.error_code)
    store.incidents.add_event(
        incident_id, TimelineKind.MESSAGE_UNDELIVERED, {"key": key, "error": error.error_code}
    )
    log.error("Message %s could not be delivered (%s); it stays in the outbox", key, error.error_code)


def _task_retries_left() -> bool:
    """Say whether the running task will be tried again (False outside a task: nothing retries)."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        return int(ti.try_number) <= int(ti.max_tries)
    except Exception:
        return False


def update(
    *,
    channel: str,
    ts: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    slack_conn_id: str = SLACK_CONN_ID,
) -> bool:
    """Replace a posted message (the approval request once decided); False when Slack is not configured."""
    if not slack_on(slack_conn_id):
        return False
    from incident_ops.hooks.slack import IncidentSlackHook

    IncidentSlackHook(slack_conn_id=slack_conn_id).update_message(
        channel=channel, ts=ts, text=safe_text(text), blocks=blocks
    )
    return True


def safe_text(text: str) -> str:
    """Return a message's plain text redacted and escaped: it renders, it never mentions or links."""
    from include.redaction import redact_value
    from include.slack_blocks import mrkdwn_escape

    return mrkdwn_escape(redact_value(text))
