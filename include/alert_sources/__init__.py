"""Turn notifications from alerting systems into the workflow's Alert (the DAG run conf), pure Python.

Supported senders, with their payloads exactly as they document them:

* ``alertmanager``: Prometheus Alertmanager's webhook (version "4"): a group envelope with ``alerts[]``.
* ``grafana``: Grafana unified alerting's webhook contact point: the same envelope plus ``orgId``,
  ``values``, ``dashboardURL``, ``panelURL``, ``silenceURL``; a firing alert's ``endsAt`` is Go's zero time.
* ``pagerduty``: a PagerDuty Events API v2 event (``event_action`` trigger / acknowledge / resolve).
* ``generic``: the flat conf of the ``incident_response`` DAG, plus an optional ``status``.

Every sender maps to :class:`Notification` objects; the API route decides what to do with them. Sizes
are bounded by ``include.limits``: free text is clipped to fit, a notification with more than
``MAX_ALERTS_PER_NOTIFICATION`` alerts raises :class:`TooManyAlertsError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from include.alert_sources.base import (
    ACKNOWLEDGED,
    FIRING,
    RESOLVED,
    Batch,
    Notification,
    PayloadError,
    TooManyAlertsError,
)
from include.alert_sources.conf import (
    ALLOW_UNKNOWN_CONF_KEYS_ENV,
    CONF_KEYS,
    UNKNOWN_DEVICE,
    UNKNOWN_ERROR,
    describe_unknown_keys,
    incident_key_for_fingerprint,
    run_id_for,
    unknown_conf_keys,
    unknown_conf_keys_allowed,
)
from include.alert_sources.fields import (
    DEVICE_LABELS,
    ELLIPSIS,
    ERROR_LABELS,
    SEVERITY_LABELS,
    SEVERITY_MAP,
    json_type,
)
from include.alert_sources.generic import normalise_generic
from include.alert_sources.grouped import normalise_group
from include.alert_sources.pagerduty import PD_ACTIONS, PD_SEVERITIES, normalise_pagerduty
from include.limits import (
    MAX_ALERTS_PER_NOTIFICATION,
    MAX_FINGERPRINT,
    MAX_ID,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
    MAX_METRIC_NAME,
    MAX_METRICS,
)
from include.vocabulary import Source

__all__ = [
    "ACKNOWLEDGED",
    "ALLOW_UNKNOWN_CONF_KEYS_ENV",
    "CONF_KEYS",
    "DEVICE_LABELS",
    "ELLIPSIS",
    "ERROR_LABELS",
    "FIRING",
    "MAX_ALERTS_PER_NOTIFICATION",
    "MAX_FINGERPRINT",
    "MAX_ID",
    "MAX_LABELS",
    "MAX_LABEL_KEY",
    "MAX_LABEL_VALUE",
    "MAX_MESSAGE",
    "MAX_METRICS",
    "MAX_METRIC_NAME",
    "PD_ACTIONS",
    "PD_SEVERITIES",
    "RESOLVED",
    "SEVERITY_LABELS",
    "SEVERITY_MAP",
    "UNKNOWN_DEVICE",
    "UNKNOWN_ERROR",
    "WEBHOOK_SOURCES",
    "Batch",
    "Notification",
    "PayloadError",
    "TooManyAlertsError",
    "describe_unknown_keys",
    "incident_key_for_fingerprint",
    "normalise",
    "run_id_for",
    "unknown_conf_keys",
    "unknown_conf_keys_allowed",
]


def _pagerduty(body: dict[str, Any], options: dict[str, bool]) -> Batch:
    return Batch([normalise_pagerduty(body, options)])


# The webhook senders and how each one's body becomes notifications: a new sender is its module, its
# `Source` member (which also offers it in the trigger form) and one entry here.
NORMALISERS: dict[Source, Callable[[dict[str, Any], dict[str, bool]], Batch]] = {
    Source.ALERTMANAGER: partial(normalise_group, Source.ALERTMANAGER),
    Source.GRAFANA: partial(normalise_group, Source.GRAFANA),
    Source.PAGERDUTY: _pagerduty,
    Source.GENERIC: normalise_generic,
}
WEBHOOK_SOURCES = tuple(NORMALISERS)


def normalise(source: str, body: Any, *, options: Mapping[str, bool] | None = None) -> Batch:
    """Map a decoded JSON body from `source` to notifications; raise PayloadError when it is malformed.

    `options` (``require_approval``, ``dry_run``) apply to every alert of the request.
    """
    if source not in WEBHOOK_SOURCES:
        raise PayloadError("source", f"unknown source {source!r}; use one of {', '.join(WEBHOOK_SOURCES)}")
    if not isinstance(body, dict):
        raise PayloadError("body", f"must be a JSON object, not {json_type(body)}")
    return NORMALISERS[Source(source)](body, dict(options or {}))
