"""Prometheus Alertmanager's and Grafana's webhook bodies: a group envelope with ``alerts[]``."""

from __future__ import annotations

from typing import Any

from include.alert_sources.base import FIRING, Batch, Notification, PayloadError, TooManyAlertsError
from include.alert_sources.fields import (
    DEVICE_LABELS,
    ERROR_LABELS,
    SEVERITY_LABELS,
    bounded_labels,
    build_alert,
    clip,
    first_label,
    json_type,
    labels_fingerprint,
    message_from,
    metrics_of,
    parse_time,
    severity_hint,
    status_of,
    string_map,
)
from include.limits import MAX_ALERTS_PER_NOTIFICATION, MAX_FINGERPRINT
from include.vocabulary import AlertStatus, Source


def normalise_group(source: str, body: dict[str, Any], options: dict[str, bool]) -> Batch:
    """Map an Alertmanager or Grafana group to its notifications; refuse more than the cap."""
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"must be a list of alerts, not {json_type(alerts)}")
    if len(alerts) > MAX_ALERTS_PER_NOTIFICATION:
        raise TooManyAlertsError(len(alerts), MAX_ALERTS_PER_NOTIFICATION)
    group_status = status_of(body.get("status"), "status", default=FIRING)
    common_labels = string_map(body.get("commonLabels"), "commonLabels")
    common_annotations = string_map(body.get("commonAnnotations"), "commonAnnotations")
    truncated = body.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a non-negative integer")
    notifications = []
    for index, item in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(where, f"must be an object, not {json_type(item)}")
        notifications.append(
            _group_alert(source, item, where, group_status, common_labels, common_annotations, options)
        )
    return Batch(notifications, truncated=truncated)


def _group_alert(
    source: str,
    item: dict[str, Any],
    where: str,
    group_status: AlertStatus,
    common_labels: dict[str, str],
    common_annotations: dict[str, str],
    options: dict[str, bool],
) -> Notification:
    labels = string_map(item.get("labels"), f"{where}.labels")
    annotations = string_map(item.get("annotations"), f"{where}.annotations")
    status = status_of(item.get("status"), f"{where}.status", default=group_status)
    started = parse_time(item.get("startsAt"), f"{where}.startsAt")
    parse_time(item.get("endsAt"), f"{where}.endsAt")  # validated only: a firing alert's is Go's zero time
    fingerprint = item.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise PayloadError(f"{where}.fingerprint", "must be a string")
    # Alertmanager's fingerprint is a hash of the label set; do the same when a sender leaves it out.
    fingerprint = clip(fingerprint, MAX_FINGERPRINT) or labels_fingerprint(labels)
    visible = {k: v for k, v in labels.items() if not k.startswith("__")}
    metrics = metrics_of(item.get("values"), f"{where}.values") if source == Source.GRAFANA else {}
    notes = {**common_annotations, **annotations}
    alert = build_alert(
        {
            "device_id": first_label(visible, DEVICE_LABELS) or first_label(common_labels, DEVICE_LABELS),
            "error": first_label(visible, ERROR_LABELS) or first_label(common_labels, ERROR_LABELS),
            "message": message_from(notes.get("summary"), notes.get("description")),
            "source": source,
            "severity": severity_hint(
                first_label(visible, SEVERITY_LABELS) or first_label(common_labels, SEVERITY_LABELS)
            ),
            "metrics": metrics,
            "labels": bounded_labels(visible),
            "fingerprint": fingerprint,
            "started_at": started.isoformat() if started else None,
            **options,
        },
        where,
    )
    return Notification(Source(source), status, alert, episode=started.isoformat() if started else None)
