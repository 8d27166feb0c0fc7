"""LocalAirflow: an api-server, scheduler, dag-processor and triggerer run as child processes."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from . import environment, postgres
from .credentials import ensure_passwords, home_secrets, read_passwords
from .environment import DEFAULT_PORT, REPO
from .errors import LocalAirflowError
from .files import tail
from .migrate import forget_migration, migrate
from .polling import all_healthy, poll
from .processes import COMPONENTS, Component, ComponentDied, descendants, kill, spawn, terminate
from .rest import AirflowApi, url_host


class LocalAirflow(AirflowApi):
    """An Airflow api-server, scheduler, dag-processor and triggerer, run as child processes.

    The metadata DB is an embedded PostgreSQL under home (a SQLite file when pgserver is missing),
    unless the environment names another one.

    :param home: AIRFLOW_HOME of the stack (created if missing); holds the DB, secrets, passwords and logs.
    :param api_port: port of the API server; ``None`` takes ``AIRFLOW__API__PORT`` or 8080.
    :param repo: the project checkout, whose dags/ and plugins/ are used.
    :param extra_env: variables that override everything else (e.g. connections to fake servers).
    :param inherit_airflow_env: keep the caller's ``AIRFLOW_*`` variables; tests turn it off so a
        developer's shell cannot point them at another database or DAGs folder.
    """

    def __init__(
        self,
        home: Path,
        api_port: int | None = None,
        *,
        repo: Path = REPO,
        extra_env: Mapping[str, str] | None = None,
        inherit_airflow_env: bool = True,
    ) -> None:
        super().__init__()
        self.home = Path(home).resolve()
        self.repo = Path(repo).resolve()
        self.extra_env = dict(extra_env or {})
        self.inherit_airflow_env = inherit_airflow_env
        self.api_port = api_port or int(self._outside_env().get("AIRFLOW__API__PORT") or DEFAULT_PORT)
        self.components: dict[str, Component] = {}
        self.stopped_pids: set[int] = set()
        self._env: dict[str, str] | None = None
        self._started_at: datetime | None = None
        self._start_clock = 0.0
        self.ready_after: float | None = None  # seconds from start() to healthy, set by wait_ready()
        self._postgres_started = False

    # ----------------------------------------------------------------- environment

    @property
    def env(self) -> dict[str, str]:
        """Return the environment of the Airflow processes (creates home and its secrets once)."""
        if self._env is None:
            self.home.mkdir(parents=True, exist_ok=True)
            outside = self._outside_env()
            keys = home_secrets(self.home, environment.airflow_cfg_path(outside, self.home))
            defaults = self._defaults(keys)
            self._env = environment.build_env(
                outside, self.extra_env, defaults, home=self.home, repo=self.repo, api_port=self.api_port
            )
        return self._env

    def _defaults(self, keys: Mapping[str, str]) -> dict[str, str]:
        """Return the settings this stack gives unless the caller's environment sets them."""
        return environment.defaults(self.home, self.repo, self.api_port, keys)

    def _outside_env(self) -> dict[str, str]:
        """Return the caller's environment plus extra_env, minus Airflow variables when not inherited."""
        return environment.outside_env(self.extra_env, self.inherit_airflow_env)

    # ------------------------------------------------------------------ prepare

    def prepare(self, timeout: float = 600.0) -> None:
        """Create home, the passwords file, the embedded database and its schema; fast when already done."""
        env = self.env
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        ensure_passwords(env, self.passwords_file)
        self._start_postgres(timeout)
        migrate(env, self.home, self.logs_dir, timeout)

    @property
    def postgres_dir(self) -> Path:
        """Return the data folder (and socket folder) of the embedded PostgreSQL."""
        return self.home / postgres.DATA_DIR_NAME

    @property
    def uses_embedded_postgres(self) -> bool:
        """Return whether the metadata DB is the embedded PostgreSQL of this home."""
        return postgres.is_embedded(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], self.postgres_dir)

    def _start_postgres(self, timeout: float) -> None:
        """Start the embedded PostgreSQL if it is the metadata DB; stop() stops it."""
        if not self.uses_embedded_postgres:
            return
        self._postgres_started = True
        if postgres.start(self.postgres_dir, self.logs_dir / "postgres.log", timeout):
            forget_migration(self.home)  # a new, empty database needs its schema

    @property
    def logs_dir(self) -> Path:
        """Return the folder holding the process logs."""
        return self.home / "logs"

    @property
    def passwords_file(self) -> Path:
        """Return the SimpleAuthManager passwords file."""
        return Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])

    def passwords(self) -> dict[str, str]:
        """Return the SimpleAuthManager passwords by username."""
        return read_passwords(self.passwords_file)

    def login(self, username: str = "admin") -> str:
        """Log in as a configured user and make the token the default for api()."""
        self.default_token = self.token(username, self.passwords()[username])
        return self.default_token

    # ------------------------------------------------------------------ processes

    @property
    def component_args(self) -> dict[str, tuple[str, ...]]:
        """Return the `airflow` arguments of each process, by name."""
        return dict(COMPONENTS)

    def component_env(self, name: str) -> dict[str, str]:
        """Return the environment of one process."""
        return self.env

    def start(self) -> None:
        """Start the Airflow processes, each in its own process group."""
        if self.components:
            raise LocalAirflowError("already started")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.uses_embedded_postgres and postgres.server_pid(self.postgres_dir) is None:
            self._start_postgres(timeout=120.0)
        self._started_at = datetime.now(UTC)
        self._start_clock = time.monotonic()
        try:
            for name, args in self.component_args.items():
                self.components[name] = self._spawn(name, args, self.component_env(name))
        except BaseException:
            self.stop()
            raise

    def _spawn(
        self, name: str, args: Iterable[str], env: Mapping[str, str], *, append: bool = False
    ) -> Component:
        """Start one `airflow <args>` with its output in logs/<name>.log."""
        return spawn(name, args, env, self.home, self.logs_dir / f"{name}.log", append=append)

    def check_alive(self) -> None:
        """Raise ComponentDied if any started process has exited."""
        for component in self.components.values():
            if not component.alive():
                raise ComponentDied(component.name, component.process.returncode, component.log_path)

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Wait until the health check reports every component healthy since our start."""
        if not self.components:
            raise LocalAirflowError("start() first")
        # A job of a previous run in the same database may still look alive for 30 s: ask for a
        # heartbeat newer than our start.
        since = (self._started_at or datetime.now(UTC)) - timedelta(seconds=1)

        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            status, body = self._get_quietly("/api/v2/monitor/health")
            return body if status == 200 and all_healthy(body, since) else None

        body = poll(healthy, timeout, "all Airflow components to report healthy")
        self.ready_after = time.monotonic() - self._start_clock
        return body

    def wait_for_exit(self, interval: float = 0.5) -> Component:
        """Block until one of the processes exits and return it."""
        while True:
            for component in self.components.values():
                if not component.alive():
                    return component
            time.sleep(interval)

    def pids(self) -> set[int]:
        """Return the ids of every live process of the stack, descendants included."""
        roots = [c.pid for c in self.components.values() if c.alive()]
        return set(roots) | set(descendants(roots))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every process we started (SIGTERM, wait up to timeout, then SIGKILL), then the database."""
        if self.components:
            terminate(list(self.components.values()), timeout, self.stopped_pids)
            self.components = {}
        if self._postgres_started:
            postgres.stop(self.postgres_dir, timeout)
            self._postgres_started = False

    def stop_component(self, name: str, timeout: float = 30.0) -> None:
        """Stop one component and what it forked, as an operator's restart would; the rest keep running."""
        component = self.components.pop(name, None)
        if component is None:
            raise LocalAirflowError(f"{name} is not running")
        terminate([component], timeout, self.stopped_pids)

    def kill_component(self, name: str) -> None:
        """SIGKILL one component and what it forked, with no chance to clean up; the rest keep running."""
        component = self.components.pop(name, None)
        if component is None:
            raise LocalAirflowError(f"{name} is not running")
        kill([component], self.stopped_pids)

    def kill(self) -> None:
        """SIGKILL every Airflow process at once and forget them, leaving the database running.

        What a killed launcher leaves behind: the embedded PostgreSQL runs on (it is not one of our
        children), and the next start on this home uses it as it is.
        """
        kill(list(self.components.values()), self.stopped_pids)
        self.components = {}
        self._postgres_started = False

    def start_component(self, name: str) -> None:
        """Start again a component stopped with stop_component; its log goes on in the same file."""
        if name in self.components:
            raise LocalAirflowError(f"{name} is already running")
        self.components[name] = self._spawn(
            name, self.component_args[name], self.component_env(name), append=True
        )

    def log_tails(self, lines: int = 30) -> str:
        """Return the last lines of every process log, for failure reports."""
        paths = [c.log_path for c in self.components.values()] or sorted(self.logs_dir.glob("*.log"))
        return "\n".join(f"===== {p.name} =====\n{tail(p, lines)}" for p in paths)

    def __enter__(self) -> LocalAirflow:
        """Return self; everything started inside the block is stopped on exit."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the stack."""
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def ui_url(self) -> str:
        """Return the address users open in a browser."""
        return self.env.get("AIRFLOW__API__BASE_URL", f"http://localhost:{self.api_port}").rstrip("/")

    @property
    def api_url(self) -> str:
        """Return the address this process uses to reach the API server."""
        host = self.env.get("AIRFLOW__API__HOST", "127.0.0.1")
        if host in ("", "0.0.0.0", "::", "localhost"):
            host = "127.0.0.1"
        root = urllib.parse.urlsplit(self.ui_url).path.rstrip("/")
        return f"http://{url_host(host)}:{self.api_port}{root}"
