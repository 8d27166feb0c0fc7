"""A number beyond a float's range in a sender's payload is the sender's mistake: a 4xx naming the field."""

from __future__ import annotations

import pytest

from tests.api.fixtures import load, salted
from tests.api.webhooks import post, run_count


def huge(digits: int) -> int:
    return int("9" * digits)


@pytest.mark.parametrize("digits", [310, 400, 4000])
@pytest.mark.parametrize(
    ("source", "place", "field"),
    [
        ("grafana", lambda body, n: body["alerts"][0]["values"].update(B=n), "alerts[0].values.B"),
        (
            "pagerduty",
            lambda body, n: body["payload"]["custom_details"].update(flow=n),
            "payload.custom_details.flow",
        ),
        ("generic", lambda body, n: body.setdefault("metrics", {}).update(flow=n), "body"),
    ],
)
def test_a_number_beyond_a_float_is_refused_naming_the_field(webhook, tokens, source, place, field, digits):
    fixture = {"grafana": "grafana_firing", "pagerduty": "pagerduty_trigger", "generic": "generic"}[source]
    body = salted(load(fixture))
    place(body, huge(digits))
    before = run_count(webhook, tokens)
    response = post(webhook, source, body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["field"] == field
    if source != "generic":
        assert "range" in response.json()["detail"]
    assert run_count(webhook, tokens) == before
