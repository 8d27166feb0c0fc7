"""Addresses in the Airflow UI that messages and pages link to."""

from __future__ import annotations

from urllib.parse import quote


def run_url(dag_run) -> str:
    """Return the Airflow UI address of a DAG run."""
    from incident_ops.config import airflow_base_url

    return f"{airflow_base_url()}/dags/{quote(dag_run.dag_id)}/runs/{quote(dag_run.run_id, safe='')}"


def record_url(approval_id: str) -> str:
    """Return the address of an approval record's page."""
    from incident_ops.config import airflow_base_url

    return f"{airflow_base_url()}/incident-response/approvals/{approval_id}"
