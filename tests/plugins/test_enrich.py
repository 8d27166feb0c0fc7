"""enrich: the inventory API when `device_inventory_api` is configured, the shipped file otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from incident_ops import tasks
from incident_ops.hooks.errors import ServiceRejectedError, ServiceUnavailableError
from incident_ops.hooks.incident_store import get_store
from include import names
from include.models import Alert
from include.store import incident_id_for
from tests.fakes.json_service import FakeJsonService

DAG_RUN = SimpleNamespace(dag_id="incident_response", run_id="run-enrich")


class FakeTI:
    def __init__(self, device_id: str) -> None:
        self.alert = Alert(device_id=device_id, error="OVERHEATING").to_xcom()

    def xcom_pull(self, task_ids: str):
        assert task_ids == names.INGEST
        return self.alert


@pytest.fixture
def store(incident_store_url):
    return get_store()


@pytest.fixture
def inventory_api(monkeypatch):
    with FakeJsonService() as service:
        monkeypatch.setenv("AIRFLOW_CONN_DEVICE_INVENTORY_API", service.connection_json())
        yield service


def test_without_a_connection_the_shipped_file_answers(store):
    enrichment = tasks.enrich(ti=FakeTI("PUMP-07B"), dag_run=DAG_RUN)
    assert (enrichment["known"], enrichment["site"], enrichment["source"]) == (
        True,
        "Plant North",
        "inventory-file",
    )


def test_the_inventory_api_answers_when_configured(store, inventory_api):
    inventory_api.serve("/devices/TURBINE%2F9", {"site": "Offshore 2", "kind": "turbine", "firmware": 7})

    enrichment = tasks.enrich(ti=FakeTI("TURBINE/9"), dag_run=DAG_RUN)

    assert enrichment["known"] and enrichment["source"] == "inventory-api"
    assert (enrichment["site"], enrichment["kind"], enrichment["firmware"]) == ("Offshore 2", "turbine", "7")
    [event] = [
        e
        for e in store.incidents.timeline(incident_id_for(DAG_RUN.dag_id, DAG_RUN.run_id))
        if e.kind == "enriched"
    ]
    assert event.detail["source"] == "inventory-api"


def test_a_device_the_api_does_not_know(store, inventory_api):
    enrichment = tasks.enrich(ti=FakeTI("PUMP-07B"), dag_run=DAG_RUN)
    assert (enrichment["known"], enrichment["source"]) == (False, "inventory-api")


@pytest.mark.parametrize(("status", "error"), [(503, ServiceUnavailableError), (403, ServiceRejectedError)])
def test_api_errors_are_typed_for_the_retry_policy(store, inventory_api, status, error):
    inventory_api.serve("/devices/PUMP-07B", {"error": "nope"}, status=status)
    with pytest.raises(error) as info:
        tasks.enrich(ti=FakeTI("PUMP-07B"), dag_run=DAG_RUN)
    assert info.value.status_code == status
