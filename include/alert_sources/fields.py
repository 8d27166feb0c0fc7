"""Field helpers shared by every sender: times, label maps, metrics, clipping, the Alert itself."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from include.alert_sources.base import FIRING, RESOLVED, PayloadError
from include.alert_sources.conf import UNKNOWN_DEVICE, UNKNOWN_ERROR
from include.limits import (
    MAX_ID,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
    MAX_METRIC_NAME,
    MAX_METRICS,
)
from include.models import Alert
from include.vocabulary import AlertStatus, Severity

# Where the device (or service) is named, most specific first; the same order for the error code.
DEVICE_LABELS = ("device_id", "device", "instance", "service", "job")
ERROR_LABELS = ("error_code", "alertname")
SEVERITY_LABELS = ("severity", "priority")
# Senders' severity words (their wire values) to ours.
SEVERITY_MAP = {
    **{severity.value: severity for severity in Severity},
    "page": Severity.CRITICAL,
    "error": Severity.CRITICAL,
    "warn": Severity.WARNING,
    "none": Severity.INFO,
}
ELLIPSIS = "…"

# RFC 3339 as the senders write it: Go adds up to nine fractional digits, PagerDuty writes "+0000".
# Anchored and bounded: one attempt, a fixed amount of work whatever the sender wrote.
_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?[ \t]{0,4}(Z|z|[+-]\d{2}:?\d{2})?$"
)


def build_alert(values: dict[str, Any], where: str, *, lenient: bool = True) -> Alert:
    """Validate the alert; senders' free text is clipped to fit, a generic body must fit as sent."""
    if lenient:
        values["device_id"] = clip(values.get("device_id"), MAX_ID) or UNKNOWN_DEVICE
        values["error"] = clip(values.get("error"), MAX_ID) or UNKNOWN_ERROR
    values = {k: v for k, v in values.items() if v is not None}
    try:
        return Alert.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'alert'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise PayloadError(where, problems) from None


def status_of(value: Any, where: str, *, default: AlertStatus) -> AlertStatus:
    """Return a firing or resolved status, `default` when the sender gave none."""
    if value is None or value == "":
        return default
    if value not in (FIRING, RESOLVED):
        raise PayloadError(where, f"must be '{FIRING}' or '{RESOLVED}', not {value!r}")
    return AlertStatus(value)


def parse_time(value: Any, where: str) -> datetime | None:
    """Parse an RFC 3339 time; None for a missing value and for Go's zero time (0001-01-01)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(where, f"must be an RFC 3339 time string, not {json_type(value)}")
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


def string_map(value: Any, where: str) -> dict[str, str]:
    """Return a labels/annotations object with string values (numbers and booleans written out)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(where, f"must be an object of strings, not {json_type(value)}")
    result = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[key] = item
        elif item is None:
            continue
        elif isinstance(item, (bool, int, float)):
            result[key] = json.dumps(item)
        else:
            raise PayloadError(f"{where}.{key}", f"must be a string, not {json_type(item)}")
    return result


def scalars(value: dict[str, Any]) -> dict[str, str]:
    """Return the string and boolean members of a free-form object, as labels."""
    result = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[str(key)] = item
        elif isinstance(item, bool):
            result[str(key)] = json.dumps(item)
    return result


def bounded_labels(labels: dict[str, str]) -> dict[str, str]:
    """Keep at most MAX_LABELS labels (sorted by name), each name and value clipped."""
    kept = {}
    for key in sorted(labels)[:MAX_LABELS]:
        name = clip(key, MAX_LABEL_KEY)
        if name:
            kept[name] = clip(labels[key], MAX_LABEL_VALUE) or ""
    return kept


def metrics_of(value: Any, where: str, *, strict: bool = True) -> dict[str, float]:
    """Return the finite numbers of an object (Grafana's ``values``); null readings are left out."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        if strict:
            raise PayloadError(where, f"must be an object of numbers, not {json_type(value)}")
        return {}
    result: dict[str, float] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            if strict and item is not None:
                raise PayloadError(f"{where}.{key}", f"must be a number, not {json_type(item)}")
            continue
        try:
            number = float(item)
        except OverflowError:  # an integer of hundreds of digits: the sender's mistake, not ours
            raise PayloadError(f"{where}.{key}", "is beyond the range of a number") from None
        if math.isfinite(number) and len(result) < MAX_METRICS:
            result[clip(str(key), MAX_METRIC_NAME) or "value"] = number
    return result


def first_label(labels: Mapping[str, str], names: Iterable[str]) -> str | None:
    """Return the first non-blank value among `names`, stripped."""
    for name in names:
        value = labels.get(name)
        if value and value.strip():
            return value.strip()
    return None


def severity_hint(value: str | None) -> str | None:
    """Map a sender's severity word to ours; None when it names none."""
    return SEVERITY_MAP.get(value.strip().lower()) if value else None


def message_from(summary: Any, description: Any) -> str | None:
    """Join summary and description (once when equal), clipped to the message limit."""
    parts = [p.strip() for p in (summary, description) if isinstance(p, str) and p.strip()]
    if len(parts) == 2 and parts[0] == parts[1]:
        parts = parts[:1]
    return clip("\n\n".join(parts), MAX_MESSAGE) or None


def text_of(value: Any) -> str | None:
    """Return a string stripped, or None for blanks and non-strings."""
    return value.strip() or None if isinstance(value, str) else None


def clip(value: Any, limit: int) -> str | None:
    """Return the text cut to `limit` characters (the last one an ellipsis when cut); None when empty."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > limit:
        value = value[: limit - 1] + ELLIPSIS
    return value or None


def labels_fingerprint(labels: dict[str, str]) -> str:
    """Hash a label set, as Alertmanager does when it names no fingerprint."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def content_fingerprint(parts: list[Any]) -> str:
    """Hash the identifying parts of an event that has no key of its own."""
    return "sha256:" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def json_type(value: Any) -> str:
    """Name the JSON type of a value, for error messages."""
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
