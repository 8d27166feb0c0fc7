"""The broker side of the MQTT intake: one kept paho-mqtt client, acknowledging only what Airflow stored.

`MqttProducer` is the :class:`~airflow.triggers.shared_stream.SharedStreamProducer` of
:class:`incident_ops.triggers.mqtt.MqttAlertTrigger` (Airflow's "ack mode" shared stream):

* it connects with a fixed client id, MQTT 5, ``clean_start=False`` and a session expiry, so the
  broker keeps the subscription and queues QoS 1 messages while the triggerer is down;
* paho's ``manual_ack``: a message's PUBACK is sent from :meth:`advance`, which Airflow calls only
  once every asset event derived from the message is stored in the metadata database (or the message
  raised nothing). A message not acknowledged is redelivered by the broker on the next connection;
* paho's network thread reconnects by itself with capped exponential backoff (1 s to 30 s) and
  re-subscribes on every connection; each connection change is passed on as a `SubscriptionStatus`.

The connection is read when the stream opens; without it the stream reports ``off`` and looks again
every minute. The password is handed to paho only, never logged and never in trigger kwargs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from include.mqtt_settings import MqttSettings, MqttSettingsError, parse_settings

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY = 1, 30
KEEPALIVE = 30
# How long the broker keeps the session (subscriptions and queued messages) while nobody is connected.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
# Unacknowledged QoS 1 messages the broker may have in flight to us (MQTT 5 Receive Maximum). Kept
# below the triggerer's per-subscriber queue ([triggerer] shared_stream_subscriber_queue_size), so a
# burst can never overflow it: the broker holds back what the trigger has not got through yet.
RECEIVE_MAXIMUM = 1000
CONNECTION_RECHECK_SECONDS = 60.0
STATUS_EVERY_SECONDS = 30.0
YIELD_EVERY = 32


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """The subscription's state: ``off``, ``connecting``, ``connected``, ``disconnected`` or ``error``."""

    state: str
    detail: str = ""
    endpoint: str = ""


@dataclass(frozen=True, slots=True)
class _Receipt:
    """What acknowledging a delivery needs: the connection it came on, its packet id and QoS."""

    generation: int
    mid: int
    qos: int


def receive_maximum() -> int:
    """Return how many unacknowledged messages to let the broker send: fewer than the queue holds."""
    from airflow.configuration import conf

    queue = conf.getint("triggerer", "shared_stream_subscriber_queue_size", fallback=1024)
    return max(1, min(RECEIVE_MAXIMUM, queue - 16))


class MqttProducer(SharedStreamProducer):
    """Subscribe to the connection's topics and yield (delivery or status, receipt) pairs."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._client: mqtt.Client | None = None
        # Bumped by paho's thread on each connection; a receipt from an older one is not acked
        # (the broker redelivers that message on the session it resumed).
        self._generation = 0

    async def _settings(self) -> MqttSettings | SubscriptionStatus:
        from incident_ops.connections import aoptional_connection

        conn = await aoptional_connection(self.conn_id)
        if conn is None:
            return SubscriptionStatus("off", f"connection {self.conn_id} is not defined")
        try:
            return parse_settings(
                host=conn.host,
                port=conn.port,
                login=conn.login,
                password=conn.password,
                extra=conn.extra_dejson,
            )
        except MqttSettingsError as exc:
            return SubscriptionStatus("error", f"connection {self.conn_id}: {exc}")

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        """Connect, subscribe, and yield every delivery and status change, forever."""
        settings = await self._settings()
        said = None
        while isinstance(settings, SubscriptionStatus):
            if settings != said:  # once, not every minute: most deployments have no broker at all
                log.log(
                    logging.INFO if settings.state == "off" else logging.ERROR,
                    "MQTT intake is off: %s",
                    settings.detail,
                )
                said = settings
                yield settings, None
            await asyncio.sleep(CONNECTION_RECHECK_SECONDS)
            settings = await self._settings()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        endpoint = f"{settings.host}:{settings.port}"
        self._client = self._connect(settings, loop, queue, endpoint)
        yield SubscriptionStatus("connecting", endpoint=endpoint), None
        last_status, burst = time.monotonic(), 0
        while True:
            try:
                item = queue.get_nowait()  # under load: no timer and no task a message
                burst += 1
                if burst >= YIELD_EVERY:  # let the trigger and the rest of the triggerer run
                    burst = 0
                    await asyncio.sleep(0)
            except asyncio.QueueEmpty:
                burst = 0
                try:
                    item = await asyncio.wait_for(queue.get(), STATUS_EVERY_SECONDS)
                except TimeoutError:
                    item = None
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY_SECONDS:
                last_status = now
                state = "connected" if self._client.is_connected() else "disconnected"
                yield SubscriptionStatus(state, "still", endpoint), None
            if item is not None:
                if isinstance(item[0], SubscriptionStatus):
                    last_status = now
                yield item

    def _connect(
        self, settings: MqttSettings, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, endpoint: str
    ) -> mqtt.Client:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        from paho.mqtt.subscribeoptions import SubscribeOptions

        def put(item: tuple[Any, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        # Callbacks run in paho's network thread; they only hand things to the event loop.
        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                detail = f"the broker refused the connection: {reason}"
                put((SubscriptionStatus("error", detail, endpoint), None))
                return
            self._generation += 1
            client.subscribe([(topic, SubscribeOptions(qos=settings.qos)) for topic in settings.topics])
            resumed = "resumed session" if flags.session_present else "new session"
            put((SubscriptionStatus("connected", resumed, endpoint), None))

        def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, reasons: list, props: Any) -> None:
            granted = zip(settings.topics, reasons, strict=False)
            refused = [topic for topic, reason in granted if reason.is_failure]
            if refused:
                detail = f"the broker refused the subscription to {', '.join(refused)}"
                put((SubscriptionStatus("error", detail, endpoint), None))

        def on_disconnect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            put((SubscriptionStatus("disconnected", str(reason), endpoint), None))

        def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            receipt = _Receipt(self._generation, message.mid, message.qos)
            put((Delivery(message.topic, message.payload), receipt))

        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if settings.login:
            client.username_pw_set(settings.login, settings.password)
        if settings.password and not settings.tls:
            log.warning(
                "MQTT connection %s sends its password without TLS; set extra.tls to true or a CA bundle",
                self.conn_id,
            )
        if settings.tls:
            client.tls_set(ca_certs=settings.tls if isinstance(settings.tls, str) else None)
        client.reconnect_delay_set(RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY)
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        properties.ReceiveMaximum = receive_maximum()
        log.info("MQTT intake connecting to %s as %s: %s", endpoint, settings.client_id, settings.topics)
        client.connect_async(
            settings.host, settings.port, keepalive=KEEPALIVE, clean_start=False, properties=properties
        )
        client.loop_start()
        return client

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Acknowledge the deliveries Airflow is done with; leave failed ones to the broker's redelivery."""
        client = self._client
        if client is None:
            return
        for item in batch:
            receipt = item.broker_payload
            if not isinstance(receipt, _Receipt) or receipt.qos == 0:
                continue
            outcome = item.outcome
            handled = outcome.acked + outcome.rejected > 0 and outcome.failed == 0
            if handled and receipt.generation == self._generation:
                client.ack(receipt.mid, receipt.qos)

    async def aclose(self) -> None:
        """Disconnect, keeping the broker's session for the next connection."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
