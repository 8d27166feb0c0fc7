"""A trigger without an alert's device or error code is refused: no incident from the Params' examples."""

from __future__ import annotations

import uuid

import pytest

from tests.api.fixtures import sync_dags_to_db
from tests.api.helpers import bearer

DAG_ID = "incident_response"
TRIGGER = f"/api/v2/dags/{DAG_ID}/dagRuns"


@pytest.fixture(scope="module")
def parsed_dag(airflow_app):
    sync_dags_to_db()
    return DAG_ID


@pytest.fixture
def api(client, parsed_dag):
    return client


def _runs(api, tokens) -> list[str]:
    response = api.get(f"{TRIGGER}?limit=1000", headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    return [run["dag_run_id"] for run in response.json()["dag_runs"]]


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"logical_date": None}, "device_id"),
        ({"logical_date": None, "conf": {}}, "device_id"),
        ({"logical_date": None, "conf": {"device_id": "X"}}, "error"),
        ({"logical_date": None, "conf": {"error": "OVERHEATING"}}, "device_id"),
        # What the form sends when the fields are left empty.
        ({"logical_date": None, "conf": {"device_id": None, "error": None}}, "device_id"),
    ],
)
def test_a_trigger_without_device_or_error_is_400_naming_the_field_and_starts_nothing(
    api, tokens, body, missing
):
    before = _runs(api, tokens)
    run_id = f"required__{uuid.uuid4().hex[:10]}"

    response = api.post(TRIGGER, json={**body, "dag_run_id": run_id}, headers=bearer(tokens["admin"]))

    assert response.status_code == 400, response.text
    assert f"param {missing}" in response.json()["detail"]
    assert api.get(f"{TRIGGER}/{run_id}", headers=bearer(tokens["admin"])).status_code == 404
    assert _runs(api, tokens) == before


def test_a_trigger_with_both_fields_starts_a_run(api, tokens):
    run_id = f"required__{uuid.uuid4().hex[:10]}"
    conf = {"device_id": "X", "error": "OVERHEATING"}

    response = api.post(
        TRIGGER,
        json={"logical_date": None, "conf": conf, "dag_run_id": run_id},
        headers=bearer(tokens["admin"]),
    )

    assert response.status_code == 200, response.text
    assert response.json()["conf"] == conf


def test_the_trigger_form_reads_both_fields_as_required_without_a_value(api, tokens):
    response = api.get(f"/api/v2/dags/{DAG_ID}/details", headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    params = response.json()["params"]

    for name in ("device_id", "error"):
        # The UI marks a field required when its schema type excludes null; a null value is then an error.
        assert params[name]["value"] is None, name
        assert params[name]["schema"]["type"] == "string", name
        assert params[name]["schema"]["examples"], name
    assert params["source"]["value"] == "ui"
