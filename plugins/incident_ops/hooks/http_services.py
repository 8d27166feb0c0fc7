"""The device inventory, device-control and ticketing APIs, as HTTP hooks over Airflow connections.

Each is optional: without its connection, the inventory file answers, actions are simulated and
tickets stay local (the task log says so).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from airflow.providers.http.hooks.http import HttpHook

from incident_ops.hooks.errors import ServiceRejectedError, ServiceUnavailableError
from include.http_retry import is_transient_status
from include.names import DEVICE_CONTROL_CONN_ID, INVENTORY_CONN_ID, TICKETING_CONN_ID

log = logging.getLogger(__name__)


class _ServiceHook(HttpHook):
    """An HTTP service of ours: statuses classified for the retry policy, bodies never logged."""

    default_conn_name = "http_default"

    def __init__(self, method: str = "POST", http_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(method=method, http_conn_id=http_conn_id or self.default_conn_name, **kwargs)

    def check(self, status: int) -> None:
        """Raise ServiceUnavailableError (retry) or ServiceRejectedError (fail) for an error status."""
        if is_transient_status(status):
            raise ServiceUnavailableError(self.http_conn_id, status)
        if status >= 400:
            raise ServiceRejectedError(self.http_conn_id, status)

    def post_once(self, endpoint: str, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """POST `body` under an idempotency key, so the service drops a repeat after a lost response."""
        # Statuses are checked here, not by the provider, which would log the response body.
        response = self.run(
            endpoint,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
            extra_options={"check_response": False},
        )
        self.check(response.status_code)
        try:
            return response.json()
        except ValueError:
            return {"status_code": response.status_code}


class InventoryHook(_ServiceHook):
    """The device inventory API: ``GET /devices/<id>``."""

    default_conn_name = INVENTORY_CONN_ID
    hook_name = "Device inventory API"

    def __init__(self, http_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(method="GET", http_conn_id=http_conn_id, **kwargs)

    def lookup(self, device_id: str) -> dict[str, Any] | None:
        """Return the inventory's record of a device, or None when it does not know it."""
        if device_id in (".", ".."):
            # A dot segment survives quoting and would be resolved to another path: no device has it.
            return None
        response = self.run(f"/devices/{quote(device_id, safe='')}", extra_options={"check_response": False})
        if response.status_code == 404:
            return None
        self.check(response.status_code)
        record = response.json()
        return record if isinstance(record, dict) else None


class DeviceControlHook(_ServiceHook):
    """The device-control API: ``POST /actions``."""

    default_conn_name = DEVICE_CONTROL_CONN_ID
    hook_name = "Device control API"

    def run_action(self, *, action: str, device_id: str, idempotency_key: str) -> dict[str, Any]:
        """Ask the device to run `action`; the key makes a retried request a no-op."""
        return self.post_once("/actions", {"action": action, "device_id": device_id}, idempotency_key)


class TicketingHook(_ServiceHook):
    """The ticketing API: ``POST /tickets``."""

    default_conn_name = TICKETING_CONN_ID
    hook_name = "Ticketing API"

    def open_ticket(self, *, incident_id: str, title: str, body: str, severity: str) -> str:
        """Open the incident's ticket (once: the incident id is its idempotency key); return its id."""
        answer = self.post_once(
            "/tickets",
            {"title": title, "description": body, "severity": severity, "external_id": incident_id},
            f"ticket:{incident_id}",
        )
        return str(answer.get("id") or answer.get("key") or answer.get("ticket_id") or incident_id)
