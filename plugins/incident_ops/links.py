"""Addresses in the Airflow UI that messages and pages link to: built here only."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def run_url_for(dag_id: str, run_id: str) -> str:
    """Return the Airflow UI address of a DAG run (run ids hold ':' and '+': quoted whole)."""
    from incident_ops.config import airflow_base_url

    return f"{airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def run_url(dag_run: Any) -> str:
    """Return the Airflow UI address of a DAG run object."""
    return run_url_for(dag_run.dag_id, dag_run.run_id)


def record_url(approval_id: str) -> str:
    """Return the address of an approval record's page."""
    from incident_ops.config import airflow_base_url

    return f"{airflow_base_url()}/incident-response/approvals/{quote(approval_id, safe='')}"
