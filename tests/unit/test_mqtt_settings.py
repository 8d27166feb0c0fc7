"""Connection mqtt_default: the extra's topics, qos, client_id and tls, with their defaults."""

from __future__ import annotations

import pytest

from include.mqtt_settings import DEFAULT_CLIENT_ID, MqttSettingsError, parse_settings


def settings(extra=None, **fields):
    values = {"host": "broker.example.com", "port": None, "login": None, "password": None, **fields}
    return parse_settings(extra=extra, **values)


def test_defaults():
    s = settings()
    assert s.topics == ("devices/+/alerts", "devices/+/telemetry")
    assert (s.port, s.qos, s.client_id, s.tls) == (1883, 1, DEFAULT_CLIENT_ID, False)


def test_extra_overrides_and_tls_port():
    s = settings(
        {"topics": ["plant/devices/+/alerts"], "qos": 2, "client_id": "plant-a", "tls": "/etc/ca.pem"}
    )
    assert (s.topics, s.qos, s.client_id, s.tls, s.port) == (
        ("plant/devices/+/alerts",),
        2,
        "plant-a",
        "/etc/ca.pem",
        8883,
    )
    assert settings({"tls": True}, port=9999).port == 9999


def test_the_password_never_shows_in_repr():
    assert "s3cret" not in repr(settings(login="airflow", password="s3cret"))


@pytest.mark.parametrize(
    ("extra", "fields", "where"),
    [
        ({"topics": []}, {}, "topics"),
        ({"topics": [1]}, {}, "topics"),
        ({"qos": 3}, {}, "qos"),
        ({"qos": True}, {}, "qos"),
        ({"client_id": "x" * 129}, {}, "client_id"),
        ({"tls": 1}, {}, "tls"),
        ({}, {"host": None}, "host"),
    ],
)
def test_bad_settings_name_the_key(extra, fields, where):
    with pytest.raises(MqttSettingsError, match=where):
        settings(extra, **fields)
