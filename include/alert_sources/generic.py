"""The generic webhook: the flat conf of the ``incident_response`` DAG, plus an optional ``status``."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from include.alert_sources.base import FIRING, Batch, Notification, PayloadError
from include.alert_sources.conf import (
    CONF_KEYS,
    describe_unknown_keys,
    unknown_conf_keys,
    unknown_conf_keys_allowed,
)
from include.alert_sources.fields import build_alert, status_of
from include.models import Alert
from include.vocabulary import Source


def normalise_generic(body: dict[str, Any], options: dict[str, bool]) -> Batch:
    """Map a flat conf to its notification; the body must be a valid alert as sent."""
    body = dict(body)
    status = status_of(body.pop("status", None), "status", default=FIRING)
    unknown = unknown_conf_keys(body)
    ignored: list[str] = []
    if unknown:
        if not unknown_conf_keys_allowed():
            raise PayloadError("body", describe_unknown_keys(unknown))
        ignored = unknown
        body = {k: v for k, v in body.items() if k in CONF_KEYS}
    body.setdefault("source", Source.GENERIC)
    alert = build_alert({**body, **options}, "body", lenient=False)
    return Batch(
        [Notification(Source.GENERIC, status, alert, episode=_episode(alert))], ignored_fields=ignored
    )


def _episode(alert: Alert) -> str | None:
    return alert.started_at.astimezone(UTC).isoformat() if alert.started_at else None
