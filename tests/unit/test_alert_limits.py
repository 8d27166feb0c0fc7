"""One set of size limits bounds an alert wherever it enters: the model, the webhooks, the alert cap."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from include import limits
from include.alert_sources import PayloadError, TooManyAlertsError, normalise
from include.models import Alert

MINIMAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"}


def _group(count: int) -> dict:
    alerts = [{"labels": {"alertname": "HighPressure", "instance": f"pump-{i}"}} for i in range(count)]
    return {"version": "4", "status": "firing", "alerts": alerts}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"labels": {f"k{i}": "v" for i in range(limits.MAX_LABELS + 1)}}, "labels"),
        ({"labels": {"k" * (limits.MAX_LABEL_KEY + 1): "v"}}, "labels"),
        ({"labels": {"site": "v" * (limits.MAX_LABEL_VALUE + 1)}}, "labels"),
        ({"metrics": {f"m{i}": 1.0 for i in range(limits.MAX_METRICS + 1)}}, "metrics"),
        ({"metrics": {"m" * (limits.MAX_METRIC_NAME + 1): 1.0}}, "metrics"),
        ({"message": "x" * (limits.MAX_MESSAGE + 1)}, "message"),
        ({"fingerprint": "f" * (limits.MAX_FINGERPRINT + 1)}, "fingerprint"),
        ({"device_id": "d" * (limits.MAX_ID + 1)}, "device_id"),
    ],
)
def test_the_alert_refuses_anything_over_a_limit(extra, field):
    with pytest.raises(ValidationError) as info:
        Alert.model_validate({**MINIMAL, **extra})
    assert {str(err["loc"][0]) for err in info.value.errors()} == {field}


def test_an_alert_at_every_limit_is_valid():
    alert = Alert.model_validate(
        {
            **MINIMAL,
            "labels": {
                f"{i:0{limits.MAX_LABEL_KEY}d}": "v" * limits.MAX_LABEL_VALUE
                for i in range(limits.MAX_LABELS)
            },
            "metrics": {f"{i:0{limits.MAX_METRIC_NAME}d}": 1.0 for i in range(limits.MAX_METRICS)},
            "message": "m" * limits.MAX_MESSAGE,
            "fingerprint": "f" * limits.MAX_FINGERPRINT,
        }
    )
    assert len(alert.labels) == limits.MAX_LABELS and len(alert.metrics) == limits.MAX_METRICS


def test_the_generic_webhook_refuses_twenty_thousand_labels():
    body = {**MINIMAL, "labels": {f"k{i}": "v" for i in range(20_000)}}
    with pytest.raises(PayloadError, match="labels"):
        normalise("generic", body)


def test_senders_labels_are_clipped_to_the_same_limits():
    group = _group(1)
    group["alerts"][0]["labels"].update({f"extra_{i:03d}": "v" * 2000 for i in range(100)})
    conf = normalise("alertmanager", group).notifications[0].conf
    assert len(conf["labels"]) == limits.MAX_LABELS
    assert max(len(v) for v in conf["labels"].values()) == limits.MAX_LABEL_VALUE


@pytest.mark.parametrize("source", ["alertmanager", "grafana"])
def test_a_notification_over_the_alert_cap_is_refused_naming_the_limit(source):
    assert len(normalise(source, _group(limits.MAX_ALERTS_PER_NOTIFICATION)).notifications) == 100

    with pytest.raises(TooManyAlertsError) as info:
        normalise(source, _group(limits.MAX_ALERTS_PER_NOTIFICATION + 1))
    assert info.value.limit == limits.MAX_ALERTS_PER_NOTIFICATION and info.value.count == 101
    assert "MAX_ALERTS_PER_NOTIFICATION" in str(info.value) and "100" in str(info.value)
    # Still a PayloadError: a route that knows nothing of the cap refuses it all the same.
    assert isinstance(info.value, PayloadError) and info.value.where == "alerts"
