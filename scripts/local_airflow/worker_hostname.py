"""The hostname a Celery worker of the local topology reports for its task instances.

All workers run on one machine, so the machine's name would not tell them apart; each worker's
environment names it (`AIRFLOW__CORE__HOSTNAME_CALLABLE` points here), as separate hosts would.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "LOCAL_AIRFLOW_WORKER_NAME"


def hostname() -> str:
    """Return `<worker name>@<machine>`, Celery's own form, or the machine's name outside a worker."""
    machine = socket.getfqdn()
    name = os.environ.get(WORKER_NAME_ENV)
    return f"{name}@{machine}" if name else machine
