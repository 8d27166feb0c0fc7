"""What the webhook tests share: the token, the route, and posting (the fixtures are in conftest.py)."""

from __future__ import annotations

from include.names import DAG_ID
from tests.api.helpers import PREFIX, bearer

TOKEN = "webhook-token-" + "0123456789abcdef" * 2
ALERTS = f"{PREFIX}/api/alerts"


def post(client, source: str, body, *, token: str | None = TOKEN, **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    if isinstance(body, (bytes, str)):
        return client.post(f"{ALERTS}/{source}", content=body, headers=headers, **kwargs)
    return client.post(f"{ALERTS}/{source}", json=body, headers=headers, **kwargs)


def airflow_run(client, tokens, run_id: str) -> dict | None:
    response = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", headers=bearer(tokens["admin"]))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()


def run_count(client, tokens) -> int:
    response = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1", headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    return response.json()["total_entries"]
