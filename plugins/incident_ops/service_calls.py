"""Device actions and tickets: sent to their APIs when configured, simulated or kept local otherwise.

The HTTP hooks are imported only when their connection exists (see integrations.py).
"""

from __future__ import annotations

import logging
from typing import Any

from incident_ops.integrations import service_on
from include.names import DEVICE_CONTROL_CONN_ID, TICKETING_CONN_ID

log = logging.getLogger(__name__)


def run_device_action(*, action: str, device_id: str, idempotency_key: str, dry_run: bool) -> dict[str, Any]:
    """Ask the device-control API to run `action`; simulate it when no connection is configured."""
    if dry_run:
        log.info("Dry run: %s on %s not sent", action, device_id)
        return {"mode": "dry_run", "action": action, "device_id": device_id}
    if not service_on(DEVICE_CONTROL_CONN_ID):
        log.warning(
            "No %s connection: %s on %s is simulated, not sent", DEVICE_CONTROL_CONN_ID, action, device_id
        )
        return {"mode": "simulated", "action": action, "device_id": device_id}
    from incident_ops.hooks.http_services import DeviceControlHook

    answer = DeviceControlHook().run_action(
        action=action, device_id=device_id, idempotency_key=idempotency_key
    )
    return {"mode": "api", "action": action, "device_id": device_id, "response": answer}


def open_ticket(*, incident_id: str, title: str, body: str, severity: str) -> dict[str, Any]:
    """Open a ticket in the ticketing API (title and body redacted); keep a local one without a connection."""
    from include.redaction import redact_value

    title, body = redact_value(title), redact_value(body)
    if not service_on(TICKETING_CONN_ID):
        log.warning("No %s connection: ticket kept in the incident store only", TICKETING_CONN_ID)
        return {"mode": "local", "ticket_id": f"LOCAL-{incident_id}"}
    from incident_ops.hooks.http_services import TicketingHook

    ticket_id = TicketingHook().open_ticket(
        incident_id=incident_id, title=title, body=body, severity=severity
    )
    return {"mode": "api", "ticket_id": ticket_id}
