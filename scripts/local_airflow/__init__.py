"""Run an embedded Airflow 3 (LocalExecutor, embedded PostgreSQL) for `make run` and the end-to-end tests.

Stdlib only on purpose: it runs before anything else is set up, and importing Airflow here would fix
Airflow's import-time configuration in the calling process (the test runner) instead of the stack's.

    python -m scripts.local_airflow            # what `make run` does
    python -m scripts.local_airflow --no-demo  # start Airflow without triggering the demo incident

The parts: environment (the processes' settings), credentials (shared keys and passwords), postgres
(the metadata DB server), migrate (its schema), processes (start, watch, stop), rest and polling
(drive the API), stack (LocalAirflow, which ties them together) and cli (`make run`).
"""

from __future__ import annotations

from .cli import DEMO_ALERT, DEMO_DAG_ID, main, port_free
from .environment import DEFAULT_PORT, DEFAULT_USERS, PRODUCT_ENV, REPO, SIMPLE_AUTH_MANAGER
from .errors import ApiError, LocalAirflowError
from .files import tail
from .polling import poll
from .processes import COMPONENTS, Component, ComponentDied, pid_alive
from .rest import TERMINAL_RUN_STATES, AirflowApi
from .stack import LocalAirflow

__all__ = [
    "COMPONENTS",
    "DEFAULT_PORT",
    "DEFAULT_USERS",
    "DEMO_ALERT",
    "DEMO_DAG_ID",
    "PRODUCT_ENV",
    "REPO",
    "SIMPLE_AUTH_MANAGER",
    "TERMINAL_RUN_STATES",
    "AirflowApi",
    "ApiError",
    "Component",
    "ComponentDied",
    "LocalAirflow",
    "LocalAirflowError",
    "main",
    "pid_alive",
    "poll",
    "port_free",
    "tail",
]
