"""CeleryAirflow: the distributed topology on one machine (PostgreSQL, Redis, N Celery workers).

The same stack as LocalAirflow (environment, secrets, users, Ctrl-C), with the CeleryExecutor, a
PostgreSQL metadata DB and incident store, Redis as the broker, the result backend on the metadata DB,
and `CELERY_WORKERS` (default 2) `airflow celery worker` processes, each with its own hostname.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import services
from .errors import LocalAirflowError
from .files import tail
from .polling import poll
from .stack import LocalAirflow
from .worker_hostname import WORKER_NAME_ENV

DEFAULT_WORKERS = 2
WORKERS_ENV = "CELERY_WORKERS"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
METADATA_DATABASE = "incident_response_airflow"
STORE_DATABASE = "incident_store"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
# Four task slots per worker: two workers give the 8 slots `make run`'s LocalExecutor has.
DEFAULT_CONCURRENCY = "4"
STORE_CONN_ENV = "AIRFLOW_CONN_INCIDENT_STORE"


def celery_defaults(store_conn: str | None = None) -> dict[str, str]:
    """Return the settings of the Celery topology on this machine's PostgreSQL and Redis."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{POSTGRES}/{METADATA_DATABASE}",
        "AIRFLOW__CELERY__BROKER_URL": DEFAULT_BROKER,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": DEFAULT_CONCURRENCY,
        STORE_CONN_ENV: store_conn or f"postgres://postgres@127.0.0.1:5432/{STORE_DATABASE}",
    }


def worker_count(env: Mapping[str, str]) -> int:
    """Return CELERY_WORKERS (default 2), refusing anything but a positive integer."""
    raw = env.get(WORKERS_ENV, "").strip() or str(DEFAULT_WORKERS)
    if not raw.isdigit() or int(raw) < 1:
        raise LocalAirflowError(f"{WORKERS_ENV} must be a positive integer, not {raw!r}")
    return int(raw)


class CeleryAirflow(LocalAirflow):
    """An api-server, scheduler, dag-processor, triggerer and Celery workers, on PostgreSQL and Redis.

    :param workers: how many `airflow celery worker` processes; ``None`` takes ``CELERY_WORKERS`` or 2.
    Every other parameter is LocalAirflow's.
    """

    def __init__(self, home: Path, api_port: int | None = None, *, workers: int | None = None, **kw: Any):
        super().__init__(home, api_port, **kw)
        self.workers = workers or worker_count(self._outside_env())

    def _defaults(self, keys: Mapping[str, str]) -> dict[str, str]:
        """Return LocalAirflow's defaults with the Celery topology's executor, databases and broker."""
        settings = super()._defaults(keys)
        settings.pop("AIRFLOW__CORE__PARALLELISM")  # the workers' concurrency bounds the slots
        settings.update(celery_defaults())
        return settings

    @property
    def worker_names(self) -> list[str]:
        """Return the workers' names: worker-1, worker-2, ..."""
        return [f"worker-{n}" for n in range(1, self.workers + 1)]

    def worker_hostname(self, name: str) -> str:
        """Return the hostname a worker reports (Celery's and its task instances')."""
        return f"{name}@{socket.getfqdn()}"

    @property
    def component_args(self) -> dict[str, tuple[str, ...]]:
        """Return LocalAirflow's processes plus one `airflow celery worker` per worker."""
        args = super().component_args
        for name in self.worker_names:
            args[name] = (
                "celery",
                "worker",
                "--celery-hostname",
                self.worker_hostname(name),
                "--skip-serve-logs",
            )
        return args

    def component_env(self, name: str) -> dict[str, str]:
        """Give each worker its own name, so its task instances say which worker ran them."""
        env = super().component_env(name)
        if name not in self.worker_names:
            return env
        return {
            **env,
            WORKER_NAME_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.local_airflow.worker_hostname.hostname",
        }

    # ------------------------------------------------------------------ prepare

    def check_services(self) -> list[str]:
        """Check that Redis answers and create the missing PostgreSQL databases; return those created.

        The result backend is left to the Celery provider's default: the metadata DB (`db+` its URL).
        """
        env = self.env
        metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        if metadata.startswith("sqlite"):
            raise LocalAirflowError(
                "the CeleryExecutor needs a metadata DB every worker can reach, not SQLite; "
                "unset AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to use PostgreSQL on 127.0.0.1:5432"
            )
        services.check_redis(env["AIRFLOW__CELERY__BROKER_URL"])
        wanted = [
            services.database_of("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", metadata),
            services.database_of(STORE_CONN_ENV, env.get(STORE_CONN_ENV, "")),
        ]
        return services.ensure_databases([db for db in wanted if db is not None])

    def prepare(self, timeout: float = 600.0) -> None:
        """Check PostgreSQL and Redis first (nothing is started if either is out of reach), then prepare."""
        self.created_databases = self.check_services()
        super().prepare(timeout)

    # ------------------------------------------------------------------ readiness

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Wait for LocalAirflow's health check, then for every worker to consume from its queue."""
        body = super().wait_ready(timeout)

        def workers_ready() -> bool:
            self.check_alive()
            # Celery logs "<hostname> ready." once the worker consumes from its queues.
            return all(
                f"{self.worker_hostname(n)} ready." in tail(self.components[n].log_path, 400)
                for n in self.worker_names
            )

        poll(workers_ready, timeout, "every Celery worker to be ready")
        return body

    @property
    def broker_url(self) -> str:
        """Return the broker the workers consume from."""
        return self.env["AIRFLOW__CELERY__BROKER_URL"]


def describe(stack: CeleryAirflow) -> list[str]:
    """Return the banner lines that say where the Celery topology's parts are."""
    env = stack.env
    return [
        f"  metadata:  {services.shown_url(env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}",
        f"  store:     {_store_shown(env.get(STORE_CONN_ENV, ''))}",
        f"  broker:    {services.shown_url(stack.broker_url)}",
        f"  workers:   {', '.join(stack.worker_hostname(n) for n in stack.worker_names)}",
    ]


def _store_shown(value: str) -> str:
    """Return the incident store's location without its password."""
    db = services.database_of(STORE_CONN_ENV, value) if value else None
    return db.shown if db else "(see AIRFLOW_CONN_INCIDENT_STORE)"
