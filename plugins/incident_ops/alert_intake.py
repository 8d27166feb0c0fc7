"""Alert intake: what a firing, resolved or acknowledged alert does, whichever way it arrived.

The webhook route (and any other entry point) normalises a notification (`include.alert_sources`)
and hands it here. Per alert:

* firing: starts one `incident_response` run per incident, through Airflow's own trigger path, under
  a run id derived from the incident key and the alert's start time, so repeats (Alertmanager
  re-sends every group_interval / repeat_interval, and retries) and concurrent twins find the same run;
* resolved: records the resolution and cancels the run's pending approval records, so the run goes
  on to `resolve_incident` without the fix (`approval_lifecycle.cancel_pending`). A run whose alert
  was resolved before it got that far checks `store.intake.resolved_upstream` itself (`ingest`
  ends the run; `request_approval` cancels its new record);
* acknowledged (PagerDuty): noted on the incident's timeline.

Everything here is synchronous (the incident store, Airflow's metadata DB): routes call it from
their thread pool. Refusals are the domain errors of `include.errors` (`AlertRefused`,
`IntakeUnavailable`); the routes map them to HTTP statuses, and a task lets its retry policy decide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from include.alert_sources import ACKNOWLEDGED, FIRING, RESOLVED, Batch, Notification, run_id_for
from include.errors import AlertRefused, IntakeUnavailable
from include.models import Alert
from include.names import DAG_ID
from include.store import AlertRun, IncidentStore, incident_id_for
from include.vocabulary import AlertStatus, Source, TimelineKind

log = logging.getLogger(__name__)


class RunExists(Exception):
    """Airflow already has a run with this id (a concurrent twin or an earlier notification)."""


# Creates the DAG run of a claimed run id (raising RunExists if Airflow has it); returns whether the
# DAG is paused. `trigger_run` by default; a task, which may not touch Airflow's database, passes its own.
RunStarter = Callable[[str, Notification], bool]


def process(batch: Batch, *, start: RunStarter | None = None) -> list[dict[str, Any]]:
    """Handle every alert of a notification, in order; raise IntakeRefused to refuse the request."""
    from incident_ops.hooks.incident_store import get_store

    handlers: dict[str, Callable[[IncidentStore, Notification], dict[str, Any]]] = {
        FIRING: partial(fire, start=start or trigger_run),
        RESOLVED: resolve,
        ACKNOWLEDGED: acknowledge,
    }
    store = _reachable(get_store)
    return _reachable(lambda: [handlers[n.status](store, n) for n in batch.notifications])


def declare(alert: Alert, *, declarer: str, request_key: str) -> dict[str, Any]:
    """Start the run of an incident a person declared (`/incident declare`), with them on its timeline.

    The intake's rules hold as for any alert: an open incident of the same key is joined, not doubled,
    and the same request again (a replay, Slack's retry) finds the run it started (`request_key`).
    """
    from incident_ops.hooks.incident_store import get_store
    from include.vocabulary import Channel, TimelineKind

    notification = Notification(
        source=Source.SLACK, status=AlertStatus.FIRING, alert=alert, episode=f"declared:{request_key}"
    )
    store = _reachable(get_store)
    result = _reachable(partial(fire, store, notification, start=partial(trigger_run, user=declarer)))
    if not result["deduplicated"]:
        # Opened here (ingest finds it and goes on) so that the declarer is on it from the start.
        incident_id = store.incidents.open(
            dag_id=DAG_ID, run_id=result["dag_run_id"], incident_key=alert.incident_key, alert=alert.to_xcom()
        )
        store.incidents.add_event(
            incident_id, TimelineKind.DECLARED, {"by": declarer, "channel": Channel.SLACK}
        )
    return result


def _reachable(call: Callable[[], Any]) -> Any:
    """Run `call`; an incident store out of reach is IntakeUnavailable."""
    from sqlalchemy.exc import OperationalError

    try:
        return call()
    except OperationalError:
        log.exception("The incident store is unavailable")
        raise IntakeUnavailable("the incident store is unavailable; try again later") from None


def _result(notification: Notification, run_id: str | None, **values: Any) -> dict[str, Any]:
    return {
        "status": notification.status,
        "incident_id": incident_id_for(DAG_ID, run_id) if run_id else None,
        "dag_run_id": run_id,
        "deduplicated": False,
        "fingerprint": notification.alert.fingerprint,
        "device_id": notification.alert.device_id,
        "error": notification.alert.error,
        **values,
    }


def fire(
    store: IncidentStore, notification: Notification, *, start: RunStarter | None = None
) -> dict[str, Any]:
    """Start the alert's run, unless a run already handles this incident."""
    key = notification.incident_key
    # One incident per key while it is open, whichever episode or entry point opened it.
    active = store.intake.active_alert_run(key, dag_id=DAG_ID)
    if active is not None:
        return _result(notification, active.run_id, deduplicated=True)
    # Without a start time (PagerDuty) the episode is the number of runs started before: the same
    # until this one is resolved, so a repeat or a concurrent twin computes the same run id.
    episode = notification.episode or f"gen:{store.intake.alert_generation(key, dag_id=DAG_ID)}"
    run_id = run_id_for(notification.source, key, episode)
    claimed = store.intake.claim_alert_run(
        run_id=run_id,
        dag_id=DAG_ID,
        incident_key=key,
        source=notification.source,
        fingerprint=notification.alert.fingerprint,
        episode=episode,
    )
    if not claimed:
        return _result(notification, run_id, deduplicated=True)
    try:
        paused = (start or trigger_run)(run_id, notification)
    except RunExists:
        return _result(notification, run_id, deduplicated=True)
    except BaseException:
        # Let the sender's retry start it: Alertmanager and Grafana retry on a 5xx.
        store.intake.release_alert_run(run_id)
        raise
    log.info("Alert %s from %s started run %s", key, notification.source, run_id)
    return _result(notification, run_id, dag_paused=paused)


def trigger_run(run_id: str, notification: Notification, *, user: str | None = None) -> bool:
    """Create the DAG run through Airflow's own trigger path; return whether the DAG is paused.

    `user` is who triggers it, as the run shows it (and as the approval policy's self-approval rule
    reads it); a webhook's run is triggered by `webhook:<source>`.
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError, OperationalError

    not_parsed = f"DAG {DAG_ID} is not available yet: the DAG processor has not parsed it"
    with create_session() as session:
        dag = session.execute(
            select(DagModel.is_stale, DagModel.has_import_errors, DagModel.is_paused).where(
                DagModel.dag_id == DAG_ID
            )
        ).first()
    if dag is None or dag.is_stale:
        raise IntakeUnavailable(not_parsed)
    if dag.has_import_errors:
        raise IntakeUnavailable(f"DAG {DAG_ID} has import errors and cannot be triggered; see the Airflow UI")
    try:
        # Like `POST /api/v2/dags/{id}/dagRuns`: a queued manual run, conf validated by the DAG's
        # Params, whether or not the DAG is paused (a paused DAG keeps it queued).
        trigger_dag(
            DAG_ID,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user or f"webhook:{notification.source}",
            run_id=run_id,
            conf=notification.conf,
            logical_date=None,
        )
    except (DagRunAlreadyExists, IntegrityError):
        raise RunExists(run_id) from None
    except OperationalError:
        # Not the incident store: Airflow's own database refused the run (busy or out of reach).
        log.exception("Airflow's metadata database refused the run %s", run_id)
        raise IntakeUnavailable("Airflow's metadata database is unavailable; try again later") from None
    except DagNotFound:
        raise IntakeUnavailable(not_parsed) from None
    except ValueError as exc:  # ParamValidationError is one: the DAG's Params refused the alert
        raise AlertRefused(f"the DAG refused the alert: {exc}") from None
    return bool(dag.is_paused)


def run_for(store: IncidentStore, notification: Notification) -> tuple[str | None, AlertRun | None]:
    """Find the run a resolve or acknowledge refers to: its episode's run, else the key's latest."""
    key = notification.incident_key
    if notification.episode:
        row = store.intake.get_alert_run(run_id_for(notification.source, key, notification.episode))
        if row is not None:
            return row.run_id, row
    row = store.intake.latest_alert_run(key, dag_id=DAG_ID, state=FIRING)
    if row is not None:
        return row.run_id, row
    # An incident opened through the REST API or the UI with the same fingerprint.
    active = store.intake.active_alert_run(key, dag_id=DAG_ID)
    if active is not None:
        return active.run_id, None
    return None, None


def resolve(store: IncidentStore, notification: Notification) -> dict[str, Any]:
    """Close the alert's incident: record the resolution and cancel its pending approvals."""
    from incident_ops.approval_lifecycle import cancel_pending

    run_id, row = run_for(store, notification)
    if run_id is None:
        # Nothing to close (never seen, or already resolved): idempotent, not an error for the sender.
        latest = store.intake.latest_alert_run(notification.incident_key, dag_id=DAG_ID)
        found = latest.run_id if latest else None
        return _result(notification, found, deduplicated=found is not None, resolved=found is not None)
    if row is not None:
        first = store.intake.resolve_alert_run(run_id, source=notification.source)
    else:
        first = True  # an open incident started outside the webhook: nothing to mark but its timeline
        store.incidents.add_event(
            incident_id_for(DAG_ID, run_id), TimelineKind.ALERT_RESOLVED, {"source": notification.source}
        )
    cancelled = cancel_pending(store, run_id)
    log.info(
        "Alert %s resolved by %s: run %s, cancelled %s",
        notification.incident_key,
        notification.source,
        run_id,
        cancelled or "nothing",
    )
    return _result(notification, run_id, deduplicated=not first, resolved=True, cancelled_approvals=cancelled)


def acknowledge(store: IncidentStore, notification: Notification) -> dict[str, Any]:
    """Note the sender's acknowledgement on the incident's timeline."""
    from include.store import NotFound

    run_id, _ = run_for(store, notification)
    if run_id is not None:
        incident_id = incident_id_for(DAG_ID, run_id)
        try:
            store.incidents.get(incident_id)
        except NotFound:
            pass  # the run has not opened it yet; the acknowledgement changes nothing for the workflow
        else:
            store.incidents.add_event(
                incident_id, TimelineKind.ALERT_ACKNOWLEDGED, {"source": notification.source}
            )
    return _result(notification, run_id)
