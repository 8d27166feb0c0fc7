"""A PagerDuty Events API v2 event: ``trigger``, ``acknowledge`` or ``resolve``."""

from __future__ import annotations

from typing import Any

from include.alert_sources.base import ACKNOWLEDGED, FIRING, RESOLVED, Notification, PayloadError
from include.alert_sources.conf import UNKNOWN_DEVICE, UNKNOWN_ERROR
from include.alert_sources.fields import (
    SEVERITY_MAP,
    bounded_labels,
    build_alert,
    content_fingerprint,
    json_type,
    message_from,
    metrics_of,
    parse_time,
    scalars,
    text_of,
)
from include.vocabulary import Severity, Source

PD_ACTIONS = {"trigger": FIRING, "acknowledge": ACKNOWLEDGED, "resolve": RESOLVED}
# PagerDuty's wire values of payload.severity (mapped to ours by SEVERITY_MAP).
PD_SEVERITIES = (Severity.CRITICAL.value, "error", Severity.WARNING.value, Severity.INFO.value)


def normalise_pagerduty(body: dict[str, Any], options: dict[str, bool]) -> Notification:
    """Map one PagerDuty event to its notification."""
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        raise PayloadError("event_action", f"must be one of {', '.join(PD_ACTIONS)}, not {action!r}")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not dedup_key.strip()):
        raise PayloadError("dedup_key", "must be a non-empty string")
    if dedup_key is not None and len(dedup_key) > 255:
        raise PayloadError("dedup_key", "must be at most 255 characters (PagerDuty's limit)")
    payload = body.get("payload")
    if action != "trigger":
        # PagerDuty needs the dedup_key to know which alert to acknowledge or resolve; so do we.
        if not dedup_key:
            raise PayloadError("dedup_key", f"is required to {action} an alert")
        if payload is not None and not isinstance(payload, dict):
            raise PayloadError("payload", f"must be an object, not {json_type(payload)}")
        details = payload or {}
        alert = build_alert(
            {
                "device_id": text_of(details.get("source")) or UNKNOWN_DEVICE,
                "error": text_of(details.get("class")) or UNKNOWN_ERROR,
                "source": "pagerduty",
                "fingerprint": dedup_key,
                **options,
            },
            "payload",
        )
        return Notification(Source.PAGERDUTY, PD_ACTIONS[action], alert)
    if not isinstance(payload, dict):
        raise PayloadError(
            "payload", f"is required to trigger an alert and must be an object, not {json_type(payload)}"
        )
    for name in ("summary", "source", "severity"):
        if not isinstance(payload.get(name), str) or not payload[name].strip():
            raise PayloadError(f"payload.{name}", "is required and must be a non-empty string")
    if payload["severity"] not in PD_SEVERITIES:
        raise PayloadError("payload.severity", f"must be one of {', '.join(PD_SEVERITIES)}")
    timestamp = parse_time(payload.get("timestamp"), "payload.timestamp")
    custom = payload.get("custom_details")
    custom = custom if isinstance(custom, dict) else {}
    labels = {
        name: payload[name]
        for name in ("component", "group", "class")
        if isinstance(payload.get(name), str) and payload[name]
    }
    labels.update({k: v for k, v in scalars(custom).items() if k not in labels})
    # Without a dedup_key PagerDuty opens a new alert per event; we key identical events together
    # so that a sender's retry does not open a second incident, and answer the key we used.
    fingerprint = dedup_key or content_fingerprint(
        [payload.get(name) for name in ("source", "component", "group", "class", "summary")]
    )
    alert = build_alert(
        {
            "device_id": text_of(custom.get("device_id")) or payload["source"],
            "error": text_of(custom.get("error_code")) or text_of(payload.get("class")) or payload["summary"],
            "message": message_from(payload["summary"], None),
            "source": "pagerduty",
            "severity": SEVERITY_MAP[payload["severity"]],
            "metrics": metrics_of(custom, "payload.custom_details", strict=False),
            "labels": bounded_labels(labels),
            "fingerprint": fingerprint,
            "started_at": timestamp.isoformat() if timestamp else None,
            **options,
        },
        "payload",
    )
    # The event's timestamp is when it was sent, not when the problem began: a resolve ends the episode.
    return Notification(Source.PAGERDUTY, FIRING, alert, episode=None)
