"""Listen to IoT devices on the MQTT broker, in the triggerer: the event trigger of the IoT asset's watcher.

`MqttAlertTrigger` runs as an Airflow "ack mode" shared stream: `MqttProducer` owns the broker
connection and acknowledges a message only once Airflow has stored what it raised. For each message
the trigger decides here, in the triggerer, with no task started:

* an alert (``…/devices/<id>/alerts``) becomes an asset event carrying the validated alert;
* telemetry (``…/devices/<id>/telemetry``) is checked against the runbooks' thresholds: a breach
  becomes an asset event with the alert it raises; readings within limits cost a dict lookup each;
* a malformed or oversized payload is counted and logged without its content, and acknowledged:
  it is never retried, and never stops the trigger.

The subscription's health (state, counters, last problem) is kept in the asset's state store under
``mqtt_subscription`` (Airflow's ``GET /api/v2/assets/{id}/state-store``) and logged every 30 s.
Its kwargs hold a connection id only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from include.names import MQTT_CONN_ID, MQTT_STATUS_KEY

if TYPE_CHECKING:
    from incident_ops.mqtt_client import MqttProducer

log = logging.getLogger(__name__)

# At most one "dropped a message" line a second, however many arrive; the counters keep the total.
DROP_LOG_INTERVAL = 1.0


@dataclass
class SubscriptionHealth:
    """What the subscription reports: its state and what it did with the messages it received."""

    state: str = "starting"
    detail: str = ""
    endpoint: str = ""
    since: str = ""
    received: int = 0
    alerts: int = 0
    breaches: int = 0
    within_limits: int = 0
    malformed: int = 0
    malformed_by_reason: dict[str, int] = field(default_factory=dict)
    last_problem: str = ""

    def snapshot(self) -> dict[str, Any]:
        """Return the health as JSON for the asset state store."""
        return {
            "state": self.state,
            "detail": self.detail,
            "endpoint": self.endpoint,
            "since": self.since,
            "updated_at": datetime.now(UTC).isoformat(),
            "received": self.received,
            "alerts": self.alerts,
            "breaches": self.breaches,
            "within_limits": self.within_limits,
            "malformed": self.malformed,
            "malformed_by_reason": dict(self.malformed_by_reason),
            "last_problem": self.last_problem,
        }


class MqttAlertTrigger(BaseEventTrigger):
    """Turn device alerts and telemetry breaches on the broker into asset events.

    :param conn_id: The MQTT connection (host, port, login, password; extra ``topics``, ``qos``,
        ``client_id``, ``tls``). Without it the trigger idles and says so.
    """

    def __init__(self, *, conn_id: str = MQTT_CONN_ID) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.health = SubscriptionHealth()
        self._last_drop_log = 0.0
        self._drops_unlogged = 0
        self._health_write: asyncio.Task | None = None
        self._health_dirty = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and kwargs the triggerer rebuilds this trigger from."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {"conn_id": self.conn_id}

    def shared_stream_key(self) -> Hashable | None:
        """Share one broker connection per MQTT connection id (and so run in Airflow's ack mode)."""
        return ("incident_ops.mqtt", self.conn_id)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> MqttProducer:
        """Return the producer that owns the broker connection and acknowledges messages."""
        from incident_ops.mqtt_client import MqttProducer

        return MqttProducer(kwargs.get("conn_id", MQTT_CONN_ID))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Without a shared stream: acknowledge each message once the triggerer took what it raised."""
        from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

        producer = self.create_shared_stream_producer({"conn_id": self.conn_id})

        async def deliveries() -> AsyncIterator[Any]:
            async for raw, receipt in producer.open_stream():
                yield raw
                await producer.advance([AdvanceItem(receipt, AdvanceOutcome(acked=1, failed=0))])

        try:
            async for event in self.filter_shared_stream(deliveries()):
                yield event
        finally:
            await producer.aclose()

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Yield an event for each alert and telemetry breach; count everything else."""
        from incident_ops.mqtt_client import Delivery, SubscriptionStatus
        from include.iot_messages import MessageError, classify, event_payload
        from include.telemetry import Thresholds

        thresholds = await asyncio.to_thread(Thresholds.from_runbooks)  # reads the runbook files once
        health = self.health
        async for raw in shared_stream:
            if isinstance(raw, SubscriptionStatus):
                self._report(raw)
                continue
            if not isinstance(raw, Delivery):
                continue
            health.received += 1
            try:
                notification = classify(raw.topic, raw.payload, thresholds)
            except MessageError as exc:
                self._dropped(raw, exc)
                continue
            except Exception as exc:  # a payload must never end the subscription, whatever it holds
                self._dropped(
                    raw, MessageError("invalid", f"the payload could not be read ({type(exc).__name__})")
                )
                continue
            if notification is None:
                health.within_limits += 1
                continue
            if raw.topic.endswith("/telemetry"):  # classify checked the topic's form
                health.breaches += 1
            else:
                health.alerts += 1
            yield TriggerEvent(event_payload(notification))

    def _dropped(self, raw: Any, exc: Exception) -> None:
        health = self.health
        reason = getattr(exc, "reason", "invalid")
        health.malformed += 1
        health.malformed_by_reason[reason] = health.malformed_by_reason.get(reason, 0) + 1
        # The topic and the problem only: a payload may carry anything, and is never logged.
        health.last_problem = f"{raw.topic[:200]}: {exc}"
        now = time.monotonic()
        if now - self._last_drop_log < DROP_LOG_INTERVAL:
            self._drops_unlogged += 1
            return
        more = f" ({self._drops_unlogged} more since the last such line)" if self._drops_unlogged else ""
        log.warning(
            "Dropped an MQTT message (%d bytes) on %s: %s%s", len(raw.payload), raw.topic[:200], exc, more
        )
        self._last_drop_log, self._drops_unlogged = now, 0

    def _report(self, status: Any) -> None:
        health = self.health
        if status.state != health.state:
            health.since = datetime.now(UTC).isoformat()
        health.state = status.state
        if status.detail != "still":
            health.detail = status.detail
        health.endpoint = status.endpoint or health.endpoint
        log.info(
            "MQTT subscription %s %s (%s): %d messages, %d alerts, %d breaches, %d within limits, "
            "%d malformed",
            health.state,
            health.endpoint,
            health.detail,
            health.received,
            health.alerts,
            health.breaches,
            health.within_limits,
            health.malformed,
        )
        if self.asset_state_store is None:
            return
        # Written aside, one write at a time: a slow round trip to the triggerer's supervisor must not
        # hold up the messages behind it (the shared stream fails a subscriber that falls behind).
        self._health_dirty = True
        if self._health_write is None or self._health_write.done():
            self._health_write = asyncio.create_task(self._write_health())

    async def _write_health(self) -> None:
        while self._health_dirty:  # a change reported during a write is written right after it
            self._health_dirty = False
            store = self.asset_state_store
            if store is None:  # not run by the triggerer (no asset bound): nothing to report to
                return
            try:
                await store.aset(MQTT_STATUS_KEY, self.health.snapshot())
            except Exception:  # the health report must never stop the intake
                log.exception("Could not record the MQTT subscription's health in the asset state store")
