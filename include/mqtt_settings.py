"""The MQTT intake's settings, read from connection ``mqtt_default`` (host, port, login, password, extra)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TOPICS = ("devices/+/alerts", "devices/+/telemetry")
DEFAULT_PORT, DEFAULT_TLS_PORT = 1883, 8883
# Fixed, so the broker keeps the session (and the messages queued for it) across restarts.
DEFAULT_CLIENT_ID = "airflow-incident-response"
MAX_CLIENT_ID = 128


class MqttSettingsError(ValueError):
    """The connection's extra is not a usable MQTT configuration (the message names the key)."""


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to subscribe.

    :param tls: False for plain TCP, True for TLS with the system's CAs, or the path of a CA bundle.
    """

    host: str
    port: int
    login: str | None
    password: str | None
    topics: tuple[str, ...]
    qos: int
    client_id: str
    tls: bool | str

    def __repr__(self) -> str:
        # Never show the password, wherever a settings object is logged.
        return (
            f"MqttSettings(host={self.host!r}, port={self.port}, login={self.login!r}, "
            f"topics={self.topics!r}, qos={self.qos}, client_id={self.client_id!r}, tls={self.tls!r})"
        )


def parse_settings(
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any] | None,
) -> MqttSettings:
    """Validate the connection's fields and extra into settings."""
    extra = dict(extra or {})
    topics = extra.get("topics", list(DEFAULT_TOPICS))
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not topics or not all(isinstance(t, str) and t for t in topics):
        raise MqttSettingsError("extra.topics must be a non-empty list of topic filters")
    qos = extra.get("qos", 1)
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise MqttSettingsError("extra.qos must be 0, 1 or 2")
    client_id = extra.get("client_id") or DEFAULT_CLIENT_ID
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID:
        raise MqttSettingsError(f"extra.client_id must be a string of at most {MAX_CLIENT_ID} characters")
    tls = extra.get("tls", False)
    if isinstance(tls, str) and tls.lower() in ("true", "false"):
        tls = tls.lower() == "true"
    if not isinstance(tls, bool | str) or tls == "":
        raise MqttSettingsError("extra.tls must be true, false or the path of a CA bundle")
    if not host:
        raise MqttSettingsError("the connection needs a host")
    return MqttSettings(
        host=host,
        port=int(port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)),
        login=login or None,
        password=password or None,
        topics=tuple(topics),
        qos=int(qos),
        client_id=client_id,
        tls=tls,
    )
