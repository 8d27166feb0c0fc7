"""Device-control and ticketing APIs over Airflow HTTP connections, simulated when not configured."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

DEVICE_CONTROL_CONN_ID = "device_control_api"
INVENTORY_CONN_ID = "device_inventory_api"
TICKETING_CONN_ID = "ticketing_api"


def connection_exists(conn_id: str) -> bool:
    """Say whether the Airflow connection `conn_id` is defined."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk.bases.hook import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _raise_for_status(conn_id: str, status: int) -> None:
    from incident_ops.hooks.errors import ServiceRejectedError, ServiceUnavailableError

    if status >= 500 or status in (408, 429):
        raise ServiceUnavailableError(conn_id, status)
    if status >= 400:
        raise ServiceRejectedError(conn_id, status)


def lookup_device(device_id: str) -> dict[str, Any] | None:
    """Return the inventory API's record of a device (None if unknown); None also when not configured.

    Raises ServiceUnavailableError (retry) or ServiceRejectedError (fail) when the API errs.
    """
    from urllib.parse import quote

    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id=INVENTORY_CONN_ID)
    response = hook.run(f"/devices/{quote(device_id, safe='')}", extra_options={"check_response": False})
    if response.status_code == 404:
        return None
    _raise_for_status(INVENTORY_CONN_ID, response.status_code)
    record = response.json()
    return record if isinstance(record, dict) else None


def _post(conn_id: str, endpoint: str, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=conn_id)
    # The key lets the service drop a repeat if our retry follows a lost response. Statuses are
    # checked here, not by the hook, which would log the response body.
    response = hook.run(
        endpoint,
        json=body,
        headers={"Idempotency-Key": idempotency_key},
        extra_options={"check_response": False},
    )
    _raise_for_status(conn_id, response.status_code)
    try:
        return response.json()
    except ValueError:
        return {"status_code": response.status_code}


def run_device_action(*, action: str, device_id: str, idempotency_key: str, dry_run: bool) -> dict[str, Any]:
    """Ask the device-control API to run `action`; simulate it when no connection is configured."""
    if dry_run:
        log.info("Dry run: %s on %s not sent", action, device_id)
        return {"mode": "dry_run", "action": action, "device_id": device_id}
    if not connection_exists(DEVICE_CONTROL_CONN_ID):
        log.warning(
            "No %s connection: %s on %s is simulated, not sent", DEVICE_CONTROL_CONN_ID, action, device_id
        )
        return {"mode": "simulated", "action": action, "device_id": device_id}
    answer = _post(
        DEVICE_CONTROL_CONN_ID, "/actions", {"action": action, "device_id": device_id}, idempotency_key
    )
    return {"mode": "api", "action": action, "device_id": device_id, "response": answer}


def open_ticket(*, incident_id: str, title: str, body: str, severity: str) -> dict[str, Any]:
    """Open a ticket in the ticketing API; keep a local one when no connection is configured."""
    if not connection_exists(TICKETING_CONN_ID):
        log.warning("No %s connection: ticket kept in the incident store only", TICKETING_CONN_ID)
        return {"mode": "local", "ticket_id": f"LOCAL-{incident_id}"}
    answer = _post(
        TICKETING_CONN_ID,
        "/tickets",
        {"title": title, "description": body, "severity": severity, "external_id": incident_id},
        f"ticket:{incident_id}",
    )
    ticket_id = str(answer.get("id") or answer.get("key") or answer.get("ticket_id") or incident_id)
    return {"mode": "api", "ticket_id": ticket_id}
