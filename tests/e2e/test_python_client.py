"""The official Python client (`apache-airflow-client`) against a real API server, as the README shows it.

Get a token from `POST /auth/token`, trigger `incident_response` with an alert as conf, read the run
back and follow it to success; a mistyped conf key is refused with a 400 that names it.
"""

from __future__ import annotations

import airflow_client.client as client
import pytest
import requests
from airflow_client.client.rest import ApiException

from include.names import DAG_ID
from scripts.local_airflow import LocalAirflow

# An informational alert: the run logs it and ends on its own.
ALERT = {
    "device_id": "MOTOR-21",
    "error": "MAINTENANCE_DUE",
    "message": "Scheduled bearing inspection is due",
    "severity": "info",
    "labels": {"site": "plant-north"},
}


@pytest.fixture(scope="module")
def api_client(airflow_stack: LocalAirflow):
    """Return an authenticated ApiClient, the token fetched as the README does it."""
    host = airflow_stack.api_url
    password = airflow_stack.passwords()["admin"]
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    response = session.post(
        f"{host}/auth/token", json={"username": "admin", "password": password}, timeout=30
    )
    assert response.status_code == 201, response.text
    configuration = client.Configuration(host=host, access_token=response.json()["access_token"])
    configuration.proxy = None
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture(scope="module")
def dag_ready(airflow_stack: LocalAirflow, api_client) -> str:
    """Wait, through the client, for the DAG processor to parse incident_response; unpause it."""
    dags = client.DAGApi(api_client)

    def parsed():
        try:
            return dags.get_dag(DAG_ID)
        except ApiException as err:
            if err.status != 404:
                raise
            return None

    airflow_stack.wait_until(parsed, 120, f"the client to see DAG {DAG_ID}", interval=1.0)
    dags.patch_dag(DAG_ID, client.DAGPatchBody(is_paused=False), update_mask=["is_paused"])
    return DAG_ID


def test_trigger_read_back_and_follow_a_run_with_the_official_client(airflow_stack, api_client, dag_ready):
    runs = client.DagRunApi(api_client)
    run = runs.trigger_dag_run(DAG_ID, client.TriggerDAGRunPostBody(logical_date=None, conf=ALERT))
    assert run.conf == ALERT and run.state.value in ("queued", "running")

    read = runs.get_dag_run(DAG_ID, run.dag_run_id)
    assert read.dag_run_id == run.dag_run_id and read.conf == ALERT

    def finished():
        current = runs.get_dag_run(DAG_ID, run.dag_run_id)
        return current if current.state.value in ("success", "failed") else None

    read = airflow_stack.wait_until(finished, 180, f"run {run.dag_run_id} to finish", interval=1.0)
    assert read.state.value == "success"
    states = {
        ti.task_id: ti.state.value if ti.state else None
        for ti in client.TaskInstanceApi(api_client).get_task_instances(DAG_ID, run.dag_run_id).task_instances
    }
    assert states["log_only"] == "success" and states["page_oncall"] == "skipped"


def test_the_client_sees_a_400_naming_a_mistyped_key(api_client, dag_ready):
    runs = client.DagRunApi(api_client)
    with pytest.raises(ApiException) as refused:
        runs.trigger_dag_run(
            DAG_ID, client.TriggerDAGRunPostBody(logical_date=None, conf={**ALERT, "severty": "critical"})
        )
    assert refused.value.status == 400
    assert "'severty' (did you mean 'severity'?)" in refused.value.body

    with pytest.raises(ApiException) as invalid:
        runs.trigger_dag_run(
            DAG_ID, client.TriggerDAGRunPostBody(logical_date=None, conf={**ALERT, "severity": "high"})
        )
    assert invalid.value.status == 400 and "severity" in invalid.value.body
