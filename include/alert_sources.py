"""Turn notifications from alerting systems into the workflow's Alert (the DAG run conf), pure Python.

Supported senders, with their payloads exactly as they document them:

* ``alertmanager``: Prometheus Alertmanager's webhook (version "4"): a group envelope with ``alerts[]``.
* ``grafana``: Grafana unified alerting's webhook contact point: the same envelope plus ``orgId``,
  ``values``, ``dashboardURL``, ``panelURL``, ``silenceURL``; a firing alert's ``endsAt`` is Go's zero time.
* ``pagerduty``: a PagerDuty Events API v2 event (``event_action`` trigger / acknowledge / resolve).
* ``generic``: the flat conf of the ``incident_response`` DAG, plus an optional ``status``.

Every sender maps to :class:`Notification` objects; the API route decides what to do with them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from include.models import Alert

WEBHOOK_SOURCES = ("alertmanager", "grafana", "pagerduty", "generic")
FIRING, RESOLVED, ACKNOWLEDGED = "firing", "resolved", "acknowledged"

# The conf keys the DAG declares as Params: exactly the Alert's fields (a test keeps the two equal).
CONF_KEYS = frozenset(Alert.model_fields)
ALLOW_UNKNOWN_CONF_KEYS_ENV = "INCIDENT_ALLOW_UNKNOWN_CONF_KEYS"
_TRUE = frozenset({"1", "true", "yes", "on"})

# Where the device (or service) is named, most specific first; the same order for the error code.
DEVICE_LABELS = ("device_id", "device", "instance", "service", "job")
ERROR_LABELS = ("error_code", "alertname")
SEVERITY_LABELS = ("severity", "priority")
SEVERITY_MAP = {
    "critical": "critical",
    "page": "critical",
    "error": "critical",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
    "none": "info",
}
UNKNOWN_DEVICE = "unknown"
UNKNOWN_ERROR = "ALERT"

# Labels travel in the run conf, the incident store and Slack messages: keep them bounded.
MAX_LABELS = 64
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 512
MAX_METRICS = 64
MAX_METRIC_NAME = 128
MAX_ID = 128  # device_id and error (the Alert's limits)
MAX_MESSAGE = 4000
MAX_FINGERPRINT = 256
ELLIPSIS = "…"

# RFC 3339 as the senders write it: Go adds up to nine fractional digits, PagerDuty writes "+0000".
_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


class PayloadError(ValueError):
    """A notification body that cannot be understood.

    :param where: The offending field, as a path into the body (e.g. ``alerts[2].labels``).
    :param problem: What is wrong with it, in words the sender's operator can act on.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Notification:
    """One alert of a notification, normalised.

    :param source: The sender (``alertmanager``, ``grafana``, ``pagerduty``, ``generic``).
    :param status: ``firing``, ``resolved`` or ``acknowledged`` (PagerDuty only).
    :param alert: The alert as the DAG run's conf will carry it.
    :param episode: What tells one firing of a fingerprint from the next one (the alert's start time),
        or None when the sender does not say (PagerDuty): then a resolve ends the episode.
    """

    source: str
    status: str
    alert: Alert
    episode: str | None = None

    @property
    def incident_key(self) -> str:
        """Return the key that makes repeats of this alert one incident."""
        return self.alert.incident_key

    @property
    def conf(self) -> dict[str, Any]:
        """Return the DAG run conf: the alert, flat, without empty optional fields."""
        return self.alert.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Batch:
    """What one request carried.

    :param notifications: The alerts, in the sender's order.
    :param truncated: Alerts the sender left out of the body (Alertmanager's ``truncatedAlerts``).
    :param ignored_fields: Unknown generic fields dropped because unknown conf keys are allowed.
    """

    notifications: list[Notification]
    truncated: int = 0
    ignored_fields: list[str] = field(default_factory=list)


# -- entry point ----------------------------------------------------------------------------------


def normalise(source: str, body: Any, *, options: Mapping[str, bool] | None = None) -> Batch:
    """Map a decoded JSON body from `source` to notifications; raise PayloadError when it is malformed.

    `options` (``require_approval``, ``dry_run``) apply to every alert of the request.
    """
    if source not in WEBHOOK_SOURCES:
        raise PayloadError("source", f"unknown source {source!r}; use one of {', '.join(WEBHOOK_SOURCES)}")
    if not isinstance(body, dict):
        raise PayloadError("body", f"must be a JSON object, not {_json_type(body)}")
    options = dict(options or {})
    if source in ("alertmanager", "grafana"):
        return _group(source, body, options)
    if source == "pagerduty":
        return Batch([_pagerduty(body, options)])
    return _generic(body, options)


def unknown_conf_keys_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Say whether the operator allows conf keys the DAG does not declare (the env switch)."""
    value = (os.environ if environ is None else environ).get(ALLOW_UNKNOWN_CONF_KEYS_ENV, "")
    return value.strip().lower() in _TRUE


def unknown_conf_keys(conf: Mapping[str, Any]) -> list[str]:
    """Return the keys of `conf` that the DAG does not declare, sorted."""
    return sorted(str(key) for key in conf if key not in CONF_KEYS)


def describe_unknown_keys(unknown: Iterable[str]) -> str:
    """Explain unknown conf keys with the likely intended key for each, for a 400 answer."""
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(CONF_KEYS), n=1, cutoff=0.6)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return (
        f"unknown conf key(s): {', '.join(parts)}. Known keys: {', '.join(sorted(CONF_KEYS))}. "
        f"Set {ALLOW_UNKNOWN_CONF_KEYS_ENV}=true on every Airflow component to accept (and ignore) others."
    )


def run_id_for(source: str, incident_key: str, episode: str) -> str:
    """Return the deterministic DAG run id of one episode of an incident (same input, same id)."""
    digest = hashlib.sha256(f"{source}\x00{incident_key}\x00{episode}".encode()).hexdigest()[:24]
    return f"alert__{source}__{digest}"


def incident_key_for_fingerprint(fingerprint: str) -> str:
    """Return the incident key of an alert with this fingerprint (as Alert.incident_key computes it)."""
    return Alert(device_id=UNKNOWN_DEVICE, error=UNKNOWN_ERROR, fingerprint=fingerprint).incident_key


# -- Alertmanager and Grafana ---------------------------------------------------------------------


def _group(source: str, body: dict[str, Any], options: dict[str, bool]) -> Batch:
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"must be a list of alerts, not {_json_type(alerts)}")
    group_status = _status(body.get("status"), "status", default=FIRING)
    common_labels = _string_map(body.get("commonLabels"), "commonLabels")
    common_annotations = _string_map(body.get("commonAnnotations"), "commonAnnotations")
    truncated = body.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a non-negative integer")
    notifications = []
    for index, item in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(where, f"must be an object, not {_json_type(item)}")
        notifications.append(
            _group_alert(source, item, where, group_status, common_labels, common_annotations, options)
        )
    return Batch(notifications, truncated=truncated)


def _group_alert(
    source: str,
    item: dict[str, Any],
    where: str,
    group_status: str,
    common_labels: dict[str, str],
    common_annotations: dict[str, str],
    options: dict[str, bool],
) -> Notification:
    labels = _string_map(item.get("labels"), f"{where}.labels")
    annotations = _string_map(item.get("annotations"), f"{where}.annotations")
    status = _status(item.get("status"), f"{where}.status", default=group_status)
    started = _time(item.get("startsAt"), f"{where}.startsAt")
    _time(item.get("endsAt"), f"{where}.endsAt")  # validated only: a firing alert's is Go's zero time
    fingerprint = item.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise PayloadError(f"{where}.fingerprint", "must be a string")
    # Alertmanager's fingerprint is a hash of the label set; do the same when a sender leaves it out.
    fingerprint = _clip(fingerprint, MAX_FINGERPRINT) or _labels_fingerprint(labels)
    visible = {k: v for k, v in labels.items() if not k.startswith("__")}
    metrics = _metrics(item.get("values"), f"{where}.values") if source == "grafana" else {}
    notes = {**common_annotations, **annotations}
    alert = _alert(
        {
            "device_id": _first(visible, DEVICE_LABELS) or _first(common_labels, DEVICE_LABELS),
            "error": _first(visible, ERROR_LABELS) or _first(common_labels, ERROR_LABELS),
            "message": _message(notes.get("summary"), notes.get("description")),
            "source": source,
            "severity": _severity(_first(visible, SEVERITY_LABELS) or _first(common_labels, SEVERITY_LABELS)),
            "metrics": metrics,
            "labels": _bounded_labels(visible),
            "fingerprint": fingerprint,
            "started_at": started.isoformat() if started else None,
            **options,
        },
        where,
    )
    return Notification(source, status, alert, episode=started.isoformat() if started else None)


# -- PagerDuty Events API v2 ----------------------------------------------------------------------

PD_ACTIONS = {"trigger": FIRING, "acknowledge": ACKNOWLEDGED, "resolve": RESOLVED}
PD_SEVERITIES = ("critical", "error", "warning", "info")


def _pagerduty(body: dict[str, Any], options: dict[str, bool]) -> Notification:
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
            raise PayloadError("payload", f"must be an object, not {_json_type(payload)}")
        details = payload or {}
        alert = _alert(
            {
                "device_id": _text(details.get("source")) or UNKNOWN_DEVICE,
                "error": _text(details.get("class")) or UNKNOWN_ERROR,
                "source": "pagerduty",
                "fingerprint": dedup_key,
                **options,
            },
            "payload",
        )
        return Notification("pagerduty", PD_ACTIONS[action], alert)
    if not isinstance(payload, dict):
        raise PayloadError(
            "payload", f"is required to trigger an alert and must be an object, not {_json_type(payload)}"
        )
    for name in ("summary", "source", "severity"):
        if not isinstance(payload.get(name), str) or not payload[name].strip():
            raise PayloadError(f"payload.{name}", "is required and must be a non-empty string")
    if payload["severity"] not in PD_SEVERITIES:
        raise PayloadError("payload.severity", f"must be one of {', '.join(PD_SEVERITIES)}")
    timestamp = _time(payload.get("timestamp"), "payload.timestamp")
    custom = payload.get("custom_details")
    custom = custom if isinstance(custom, dict) else {}
    labels = {
        name: payload[name]
        for name in ("component", "group", "class")
        if isinstance(payload.get(name), str) and payload[name]
    }
    labels.update({k: v for k, v in _scalars(custom).items() if k not in labels})
    # Without a dedup_key PagerDuty opens a new alert per event; we key identical events together
    # so that a sender's retry does not open a second incident, and answer the key we used.
    fingerprint = dedup_key or _content_fingerprint(
        [payload.get(name) for name in ("source", "component", "group", "class", "summary")]
    )
    alert = _alert(
        {
            "device_id": _text(custom.get("device_id")) or payload["source"],
            "error": _text(custom.get("error_code")) or _text(payload.get("class")) or payload["summary"],
            "message": _message(payload["summary"], None),
            "source": "pagerduty",
            "severity": SEVERITY_MAP[payload["severity"]],
            "metrics": _metrics(custom, "payload.custom_details", strict=False),
            "labels": _bounded_labels(labels),
            "fingerprint": fingerprint,
            "started_at": timestamp.isoformat() if timestamp else None,
            **options,
        },
        "payload",
    )
    # The event's timestamp is when it was sent, not when the problem began: a resolve ends the episode.
    return Notification("pagerduty", FIRING, alert, episode=None)


# -- generic: the flat conf -----------------------------------------------------------------------


def _generic(body: dict[str, Any], options: dict[str, bool]) -> Batch:
    body = dict(body)
    status = _status(body.pop("status", None), "status", default=FIRING)
    unknown = unknown_conf_keys(body)
    ignored: list[str] = []
    if unknown:
        if not unknown_conf_keys_allowed():
            raise PayloadError("body", describe_unknown_keys(unknown))
        ignored = unknown
        body = {k: v for k, v in body.items() if k in CONF_KEYS}
    body.setdefault("source", "generic")
    alert = _alert({**body, **options}, "body", lenient=False)
    return Batch([Notification("generic", status, alert, episode=_episode(alert))], ignored_fields=ignored)


def _episode(alert: Alert) -> str | None:
    return alert.started_at.astimezone(UTC).isoformat() if alert.started_at else None


# -- helpers --------------------------------------------------------------------------------------


def _alert(values: dict[str, Any], where: str, *, lenient: bool = True) -> Alert:
    """Validate the alert; senders' free text is clipped to fit, a generic body must fit as sent."""
    if lenient:
        values["device_id"] = _clip(values.get("device_id"), MAX_ID) or UNKNOWN_DEVICE
        values["error"] = _clip(values.get("error"), MAX_ID) or UNKNOWN_ERROR
    values = {k: v for k, v in values.items() if v is not None}
    try:
        return Alert.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'alert'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise PayloadError(where, problems) from None


def _status(value: Any, where: str, *, default: str) -> str:
    if value is None or value == "":
        return default
    if value not in (FIRING, RESOLVED):
        raise PayloadError(where, f"must be 'firing' or 'resolved', not {value!r}")
    return value


def _time(value: Any, where: str) -> datetime | None:
    """Parse an RFC 3339 time; None for a missing value and for Go's zero time (0001-01-01)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(where, f"must be an RFC 3339 time string, not {_json_type(value)}")
    match = _TIME.match(value.strip())
    if not match:
        raise PayloadError(where, f"is not an RFC 3339 time: {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if year == "0001":
        return None
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    if len(zone) == 5:  # +0000
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{year}-{month}-{day}T{hour}:{minute}:{second}{zone}")
    except ValueError:
        raise PayloadError(where, f"is not a valid time: {value[:40]!r}") from None
    return parsed.replace(microsecond=micro).astimezone(UTC)


def _string_map(value: Any, where: str) -> dict[str, str]:
    """Return a labels/annotations object with string values (numbers and booleans written out)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(where, f"must be an object of strings, not {_json_type(value)}")
    result = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[key] = item
        elif item is None:
            continue
        elif isinstance(item, (bool, int, float)):
            result[key] = json.dumps(item)
        else:
            raise PayloadError(f"{where}.{key}", f"must be a string, not {_json_type(item)}")
    return result


def _scalars(value: dict[str, Any]) -> dict[str, str]:
    """Return the string and boolean members of a free-form object, as labels."""
    result = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[str(key)] = item
        elif isinstance(item, bool):
            result[str(key)] = json.dumps(item)
    return result


def _bounded_labels(labels: dict[str, str]) -> dict[str, str]:
    """Keep at most MAX_LABELS labels (sorted by name), each name and value clipped."""
    kept = {}
    for key in sorted(labels)[:MAX_LABELS]:
        name = _clip(key, MAX_LABEL_KEY)
        if name:
            kept[name] = _clip(labels[key], MAX_LABEL_VALUE) or ""
    return kept


def _metrics(value: Any, where: str, *, strict: bool = True) -> dict[str, float]:
    """Return the finite numbers of an object (Grafana's ``values``); null readings are left out."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        if strict:
            raise PayloadError(where, f"must be an object of numbers, not {_json_type(value)}")
        return {}
    result: dict[str, float] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            if strict and item is not None:
                raise PayloadError(f"{where}.{key}", f"must be a number, not {_json_type(item)}")
            continue
        if math.isfinite(item) and len(result) < MAX_METRICS:
            result[_clip(str(key), MAX_METRIC_NAME) or "value"] = float(item)
    return result


def _first(labels: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = labels.get(name)
        if value and value.strip():
            return value.strip()
    return None


def _severity(value: str | None) -> str | None:
    return SEVERITY_MAP.get(value.strip().lower()) if value else None


def _message(summary: Any, description: Any) -> str | None:
    parts = [p.strip() for p in (summary, description) if isinstance(p, str) and p.strip()]
    if len(parts) == 2 and parts[0] == parts[1]:
        parts = parts[:1]
    return _clip("\n\n".join(parts), MAX_MESSAGE) or None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _clip(value: Any, limit: int) -> str | None:
    """Return the text cut to `limit` characters (the last one an ellipsis when cut); None when empty."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > limit:
        value = value[: limit - 1] + ELLIPSIS
    return value or None


def _labels_fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def _content_fingerprint(parts: list[Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
