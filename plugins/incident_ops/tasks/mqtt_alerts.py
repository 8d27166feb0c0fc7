"""The callables of the `incident_iot_intake` DAG: asset events from the MQTT trigger become incidents.

Airflow may merge several asset events into one run of the DAG, and the broker redelivers what it is
not sure we took: every event goes through the webhooks' intake (`incident_ops.alert_intake.process`), whose
incident keys make repeats one incident, whether they arrive in one run or in several.

A task may not touch Airflow's metadata database, so `admit_alerts` only claims the run ids (in the
incident store) and returns them; the mapped `TriggerDagRunOperator` after it creates the runs through
the Task SDK. If that fails for good, `release_unstarted` releases the claim, so the next delivery of
the alert starts it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from include.alert_sources import Batch, Notification

log = logging.getLogger(__name__)


def asset_event_notifications(
    triggering_asset_events: Mapping[Any, Iterable[Any]] | None,
) -> list[Notification]:
    """Return the notifications the run's asset events carry, oldest first; skip what is not one."""
    from include.iot_messages import MessageError, notification_from_event

    notifications = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            try:
                notifications.append(notification_from_event(extra.get("payload")))
            except MessageError as exc:
                log.warning("Skipped asset event %s: %s", getattr(event, "id", "?"), exc)
    return notifications


def admit_alerts(triggering_asset_events: Mapping[Any, Iterable[Any]] | None = None) -> list[dict[str, Any]]:
    """Handle the run's alerts (repeats and resolves included); return the incident runs to create."""
    from incident_ops import alert_intake

    starts: list[dict[str, Any]] = []

    def claim_only(run_id: str, notification: Notification) -> bool:
        starts.append({"trigger_run_id": run_id, "conf": notification.conf})
        return False

    notifications = asset_event_notifications(triggering_asset_events)
    results = alert_intake.process(Batch(notifications), start=claim_only)
    for result in results:
        log.info(
            "IoT alert %s/%s (%s): run %s%s",
            result["device_id"],
            result["error"],
            result["status"],
            result["dag_run_id"],
            " (already handled)" if result["deduplicated"] else "",
        )
    return starts


def release_unstarted(context: Mapping[str, Any]) -> None:
    """Release the claim of an incident run that could not be created, so a redelivery can start it."""
    from incident_ops.hooks.incident_store import get_store

    run_id = getattr(context.get("task"), "trigger_run_id", None)
    if isinstance(run_id, str) and run_id:
        get_store().intake.release_alert_run(run_id)
        log.warning("Released the claim on run %s, which could not be created", run_id)
