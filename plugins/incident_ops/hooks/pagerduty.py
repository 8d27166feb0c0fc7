"""Page through PagerDuty's Events API v2 with the PagerDuty provider's Events hook and connection.

The provider's `PagerdutyEventsHook` reads the routing key (the connection's password) and builds the
event (`prepare_event_data`). Its `send_event` cannot be pointed elsewhere (the `pagerduty` client it
builds inside always talks to PagerDuty's public address and refuses any non-https base URL), so this
hook posts the provider's event itself: to the connection's host when set (a proxy, a regional
endpoint, a test server), else to PagerDuty.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data

from incident_ops.hooks.errors import ServiceRejectedError, ServiceUnavailableError
from include.http_retry import is_transient_status
from include.names import PAGERDUTY_CONN_ID
from include.vocabulary import Severity

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
EVENTS_API = "https://events.pagerduty.com"
# PagerDuty's own severities (its wire values): ours map onto the same words; escalation raises to
# critical.
SEVERITIES: dict[Severity, str] = {severity: severity.value for severity in Severity}


class IncidentPagerdutyHook(PagerdutyEventsHook):
    """Send trigger, acknowledge and resolve events for an incident (`dedup_key` = the incident id).

    :param pagerduty_events_conn_id: The Events connection (password = routing key, optional host =
        the Events API base URL).
    """

    default_conn_name = PAGERDUTY_CONN_ID
    hook_name = "PagerDuty Events (incidents)"

    def __init__(self, pagerduty_events_conn_id: str = PAGERDUTY_CONN_ID) -> None:
        super().__init__(pagerduty_events_conn_id=pagerduty_events_conn_id)
        self.pagerduty_events_conn_id = pagerduty_events_conn_id
        host = (self.get_connection(pagerduty_events_conn_id).host or "").strip()
        self.base_url = host.rstrip("/") if host.startswith(("http://", "https://")) else EVENTS_API

    def send_event(
        self,
        summary: str,
        severity: str,
        source: str = "airflow",
        action: str = "trigger",
        dedup_key: str | None = None,
        custom_details: Any | None = None,
        group: str | None = None,
        component: str | None = None,
        class_type: str | None = None,
        images: list[Any] | None = None,
        links: list[Any] | None = None,
    ) -> str:
        """Send one event to the Events API v2 (at the connection's base URL); return its dedup_key."""
        event = prepare_event_data(
            summary=summary,
            severity=severity,
            source=source,
            custom_details=custom_details,
            component=component,
            group=group,
            class_type=class_type,
            action=action,
            dedup_key=dedup_key,
            images=images,
            links=links,
            action_key_name="event_action",
        )
        event["routing_key"] = self.integration_key
        action = event["event_action"]
        try:
            # One attempt per call: the task's retry policy (or the person clicking) decides about more.
            response = requests.post(f"{self.base_url}/v2/enqueue", json=event, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            log.warning("PagerDuty could not be reached for a %s event: %s", action, type(exc).__name__)
            raise ServiceUnavailableError(self.pagerduty_events_conn_id, 503) from None
        if response.status_code >= 400:
            # The body may echo the event; only the status is logged.
            log.warning("PagerDuty refused a %s event: HTTP %s", action, response.status_code)
            if is_transient_status(response.status_code):
                raise ServiceUnavailableError(self.pagerduty_events_conn_id, response.status_code)
            raise ServiceRejectedError(self.pagerduty_events_conn_id, response.status_code)
        try:
            return str(response.json()["dedup_key"])
        except (ValueError, KeyError, TypeError):
            raise ServiceUnavailableError(self.pagerduty_events_conn_id, response.status_code) from None
