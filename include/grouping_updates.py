"""What follows a grouping decision: the thread update for joining alerts, and flapping.

Pure: the store says which alerts joined and when the incident was resolved; these say what to post
and whether an alert reopens its incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from include.grouping_model import DEFAULT_POLICY, GroupingPolicy, HeldAlert, NewAlert
from include.redaction import redact_value
from include.slack_blocks import mrkdwn_escape
from include.vocabulary import AlertStatus

# An alert firing again this soon after its incident was resolved is the same trouble back.
REOPEN_WITHIN = timedelta(minutes=30)
# Joining alerts are summarised in the thread at most this often, so a storm is a few messages.
SUMMARY_EVERY = timedelta(seconds=30)
# Well under Slack's 3000 characters of a section, and short enough to read on a phone.
MAX_SUMMARY = 600
# A device id longer than this is cut in the summary (ids are bounded at 128 anyway).
_MAX_NAME = 64


@dataclass(frozen=True)
class ResolvedIncident:
    """A recently resolved incident and the alerts it held (their keys and devices)."""

    incident_id: str
    resolved_at: datetime
    alert_keys: frozenset[str]
    devices: frozenset[str] = frozenset()


def joined_summary(
    alerts: Sequence[HeldAlert],
    policy: GroupingPolicy = DEFAULT_POLICY,
    *,
    limit: int = MAX_SUMMARY,
) -> str:
    """Return the thread update for alerts that joined: "+12 devices offline: PUMP-07B, …".

    Redacted, then escaped for Slack mrkdwn, and at most `limit` characters: names that do not fit are
    counted ("and 7 more"), never cut in the middle of an escape.
    """
    devices = list(dict.fromkeys(alert.device_id for alert in alerts))
    if not devices:
        return ""
    offline = all(policy.is_symptom(alert.runbook, alert.error) for alert in alerts)
    noun = "device" if len(devices) == 1 else "devices"
    head = f"+{len(devices)} {noun} {'offline' if offline else 'alerting'}: "
    names = [_clean(device) for device in devices]
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        tail = f" and {rest} more" if rest else ""
        candidate = head + ", ".join([*shown, name]) + tail
        if len(candidate) > limit:
            break
        shown.append(name)
    more = len(names) - len(shown)
    text = head + ", ".join(shown) + (f" and {more} more" if more else "")
    if not shown:
        text = f"+{len(devices)} {noun} {'offline' if offline else 'alerting'}"
    return text[:limit]


def summary_due(last_posted_at: datetime | None, now: datetime, every: timedelta = SUMMARY_EVERY) -> bool:
    """Say whether the thread may take another summary (the first one always may)."""
    return last_posted_at is None or now - last_posted_at >= every


def reopens(
    alert: NewAlert,
    incident: ResolvedIncident,
    within: timedelta = REOPEN_WITHIN,
) -> bool:
    """Say whether a firing alert reopens `incident`: one of its alerts back within `within` of the end.

    The same key, or the same device, counts: a flapping device stays one incident.
    """
    if alert.status is not AlertStatus.FIRING:
        return False
    if alert.key not in incident.alert_keys and alert.device_id not in incident.devices:
        return False
    since = alert.at - incident.resolved_at
    return timedelta(0) <= since <= within


def reopened_incident(
    alert: NewAlert,
    resolved: Iterable[ResolvedIncident],
    within: timedelta = REOPEN_WITHIN,
) -> ResolvedIncident | None:
    """Return the incident `alert` reopens, the most recently resolved one if several (None if none)."""
    matching = [incident for incident in resolved if reopens(alert, incident, within)]
    return max(matching, key=lambda i: (i.resolved_at, i.incident_id), default=None)


def _clean(device_id: str) -> str:
    # Cut before escaping, so an entity (&amp;) is never split.
    text = redact_value(device_id)
    if len(text) > _MAX_NAME:
        text = text[: _MAX_NAME - 1] + "…"
    return mrkdwn_escape(text)
