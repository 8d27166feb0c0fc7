"""Run the real Airflow API server app in-process, with the incident-response plugin from plugins/.

Logins are SimpleAuthManager users configured through the environment, and tokens come from the
app's own `POST /auth/token`, as a client would get them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.api.fixtures import sync_dags_to_db
from tests.api.helpers import APPROVERS, SIGNING_SECRET, USERS
from tests.api.webhooks import DAG_ID, TOKEN

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


@pytest.fixture(scope="package")
def passwords(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Configure the SimpleAuthManager users and their passwords file while tests/api runs."""
    secrets = {name: f"{name}-password-{uuid.uuid4().hex[:8]}" for name in USERS}
    path = tmp_path_factory.mktemp("auth") / "simple_auth_manager_passwords.json"
    path.write_text(json.dumps(secrets))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", SIMPLE_AUTH_MANAGER)
        users = ",".join(f"{name}:{role}" for name, role in USERS.items())
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", users)
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(path))
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        # A key long enough for HS512 (Airflow's default algorithm for a shared secret).
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex * 2)
        yield secrets


@pytest.fixture(scope="package")
def airflow_app(airflow_db, passwords):
    """Return Airflow's own API server app (plugins, auth manager, middlewares), built once."""
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture(scope="package")
def tokens(airflow_app, passwords) -> dict[str, str]:
    """Return a JWT per user, each from POST /auth/token."""
    from fastapi.testclient import TestClient

    client = TestClient(airflow_app)
    found = {}
    for name, password in passwords.items():
        response = client.post("/auth/token", json={"username": name, "password": password})
        assert response.status_code == 201, response.text
        found[name] = response.json()["access_token"]
    return found


@pytest.fixture
def client(airflow_app, incident_store_url, monkeypatch):
    """Return a client of the API server with its own incident store and the approvers Variable set."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_APPROVERS", json.dumps(APPROVERS))
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    return TestClient(airflow_app)


@pytest.fixture
def store(incident_store_url):
    """Return the incident store the API server uses in this test."""
    from incident_ops.hooks.incident_store import get_store

    return get_store()


@pytest.fixture(scope="module")
def parsed_dag(airflow_app):
    """Put incident_response in the metadata DB, as the DAG processor would."""
    sync_dags_to_db()
    return DAG_ID


@pytest.fixture
def webhook(client, parsed_dag, monkeypatch):
    """Return a client with the webhook token configured through INCIDENT_WEBHOOK_TOKEN."""
    monkeypatch.setenv("INCIDENT_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    return client
