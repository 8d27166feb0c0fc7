"""Map an MQTT message from a device to the intake's alert, pure Python.

Topics end in ``devices/<device_id>/alerts`` (the payload is the flat alert, the trigger conf, plus
an optional ``status``) or ``devices/<device_id>/telemetry`` (numeric readings, checked against the
runbooks' thresholds by :mod:`include.telemetry`). Payloads get the webhooks' validation and bounds
(``include.limits``, ``include.models.Alert``); a message that does not fit raises
:class:`MessageError`, whose text never quotes the payload.

The topic is the device's identity (the broker's ACLs decide who may publish where): a payload that
names another device is refused, and an IoT alert's fingerprint is scoped to its device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from include import bounded_json
from include.alert_sources import FIRING, RESOLVED, PayloadError
from include.alert_sources.base import Notification
from include.alert_sources.generic import normalise_generic
from include.limits import MAX_ID, MAX_METRIC_NAME, MAX_METRICS
from include.models import Alert
from include.telemetry import Thresholds, breach_notification
from include.vocabulary import AlertStatus, Source

ALERTS, TELEMETRY = "alerts", "telemetry"
Kind = Literal["alerts", "telemetry"]
# The largest alert (4000-character message, 64 labels of 512 characters) fits well under this.
MAX_PAYLOAD_BYTES = 64 * 1024


class MessageError(ValueError):
    """A message the intake cannot use: its text names the problem, never the payload's content.

    :param reason: A short, fixed word for counting (``topic``, ``oversized``, ``json``, ``alert``...).
    """

    def __init__(self, reason: str, problem: str) -> None:
        super().__init__(problem)
        self.reason = reason


@dataclass(frozen=True)
class DeviceTopic:
    """What a topic says: which device published, and whether it is an alert or telemetry."""

    device_id: str
    kind: Kind


def parse_topic(topic: str) -> DeviceTopic:
    """Return the device and kind of ``…/devices/<device_id>/(alerts|telemetry)``."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[-3] != "devices" or parts[-1] not in (ALERTS, TELEMETRY):
        raise MessageError("topic", "the topic does not end in devices/<device_id>/alerts or /telemetry")
    device_id = parts[-2]
    if not device_id or len(device_id) > MAX_ID or device_id in ("+", "#"):
        raise MessageError("topic", f"the device id in the topic must be 1 to {MAX_ID} characters")
    return DeviceTopic(device_id, parts[-1])  # type: ignore[arg-type]


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode a JSON object payload of bounded size."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MessageError("oversized", f"payload of {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        body = bounded_json.loads(payload)
    except bounded_json.TooDeep as exc:
        raise MessageError("depth", str(exc)) from None
    except ValueError:  # also bad UTF-8, and integers over Python's 4300 digits
        raise MessageError("json", "the payload is not JSON (UTF-8)") from None
    if not isinstance(body, dict):
        raise MessageError("json", f"the payload must be a JSON object, not {type(body).__name__}")
    return body


def check_device(topic: DeviceTopic, body: dict[str, Any]) -> None:
    """Refuse a payload that names another device than its topic (the topic is the identity)."""
    named = body.get("device_id")
    if named is not None and named != topic.device_id:
        raise MessageError("device", "the payload's device_id is not the device of its topic")


def alert_notification(topic: DeviceTopic, body: dict[str, Any]) -> Notification:
    """Map an alert payload to its notification: the generic webhook's rules, source ``iot``.

    ``device_id`` comes from the topic; ``"status": "resolved"`` closes.
    """
    check_device(topic, body)
    if body.get("status") not in (None, "", FIRING, RESOLVED):
        raise MessageError("alert", f"not a valid alert (status: must be '{FIRING}' or '{RESOLVED}')")
    body = {**body, "source": Source.IOT}
    body.setdefault("device_id", topic.device_id)
    try:
        [notification] = normalise_generic(body, {}).notifications
    except PayloadError as exc:
        # Pydantic's messages name the field and the rule, not the value, so they are safe to log.
        problem = _without_input(exc.problem)[:300]
        raise MessageError("alert", f"not a valid alert ({exc.where}: {problem})") from None
    return replace(notification, source=Source.IOT)


def readings(body: dict[str, Any]) -> dict[str, float]:
    """Return a telemetry payload's numeric readings (other fields, such as a timestamp, are ignored)."""
    try:
        values = {
            name: float(value)
            for name, value in body.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
    except OverflowError:  # an integer beyond a float's range
        raise MessageError("telemetry", "readings must be finite numbers") from None
    if not values:
        raise MessageError("telemetry", "a telemetry payload needs at least one numeric reading")
    if len(values) > MAX_METRICS:
        raise MessageError("telemetry", f"{len(values)} readings; the limit is {MAX_METRICS}")
    if any(len(name) > MAX_METRIC_NAME for name in values):
        raise MessageError("telemetry", f"reading names are limited to {MAX_METRIC_NAME} characters")
    if not all(math.isfinite(v) for v in values.values()):
        raise MessageError("telemetry", "readings must be finite numbers")
    return values


def classify(topic: str, payload: bytes, thresholds: Thresholds) -> Notification | None:
    """Return the notification a device's message raises, or None for readings within limits."""
    where = parse_topic(topic)
    body = decode_payload(payload)
    if where.kind == ALERTS:
        return alert_notification(where, body)
    check_device(where, body)
    values = readings(body)
    breach = thresholds.check(values)
    return None if breach is None else breach_notification(where.device_id, breach, values)


def event_payload(notification: Notification) -> dict[str, Any]:
    """Return what the asset event carries for a notification (JSON, no secrets: the alert itself)."""
    return {"status": notification.status, "alert": notification.conf, "episode": notification.episode}


def notification_from_event(payload: Any) -> Notification:
    """Rebuild the notification an asset event carries; raise MessageError if it is not one."""
    if not isinstance(payload, dict) or payload.get("status") not in (FIRING, RESOLVED):
        raise MessageError("event", "the asset event does not carry an IoT alert")
    try:
        alert = Alert.model_validate(payload.get("alert"))
    except ValueError:
        raise MessageError("event", "the asset event's alert is not valid") from None
    episode = payload.get("episode")
    return Notification(
        Source.IOT, AlertStatus(payload["status"]), alert, episode if isinstance(episode, str) else None
    )


def _without_input(problem: str) -> str:
    # Pydantic may append "[type=..., input_value=...]"; keep only the words before it.
    return problem.split(" [type=", 1)[0]
