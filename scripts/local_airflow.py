"""Run an embedded Airflow 3 (SQLite + LocalExecutor) for `make run` and the end-to-end tests.

Stdlib only on purpose: it runs before anything else is set up, and importing Airflow here would fix
Airflow's import-time configuration in the calling process (the test runner) instead of the stack's.

    python -m scripts.local_airflow            # what `make run` does
    python -m scripts.local_airflow --no-demo  # start Airflow without triggering the demo incident
"""

from __future__ import annotations

import argparse
import base64
import configparser
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
DEMO_DAG_ID = "incident_response"
DEMO_ALERT = Path("include/sample_alerts/pump_pressure_spike.json")
DEFAULT_PORT = 8080
DEFAULT_USERS = "admin:admin,oncall:user"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"
SECRETS_FILE_NAME = "local_airflow_secrets.json"
MIGRATED_STAMP_NAME = "local_airflow_migrated.json"

# The log servers would bind every interface on fixed ports (8793/8794) and clash between two stacks;
# on one machine the API server reads the task and trigger log files directly, so they are not needed.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server",),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
HEALTH_JOBS = {"scheduler": "scheduler", "triggerer": "triggerer", "dag_processor": "dag_processor"}
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
# Variables the product itself reads from the environment; dropped with the Airflow ones for hermetic tests.
PRODUCT_ENV = ("SLACK_SIGNING_SECRET", "INCIDENT_WEBHOOK_TOKEN")
PASSWORD_ALPHABET = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"

# Runs `airflow <args>` after asking Linux to SIGTERM it when its parent (us) dies, so a test runner
# killed outright still leaves no Airflow behind. Linux ties this to the thread that started the
# child: call start() from the main thread or one that outlives the stack.
_LAUNCHER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: rely on stop()
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent died before prctl took effect
os.execv(sys.executable, [sys.executable, "-m", "airflow", *sys.argv[2:]])
"""

T = TypeVar("T")


class LocalAirflowError(RuntimeError):
    """Raised when the local Airflow cannot be prepared, started or driven."""


class ComponentDied(LocalAirflowError):
    """Raised when one of the Airflow processes exits while it should be running."""

    def __init__(self, name: str, returncode: int | None, log_path: Path) -> None:
        self.name = name
        self.returncode = returncode
        self.log_path = log_path
        super().__init__(
            f"airflow {name} exited with code {returncode}; last lines of {log_path}:\n{tail(log_path)}"
        )


class ApiError(LocalAirflowError):
    """Raised when the Airflow REST API answers with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} answered {status}: {body!r}"[:2000])


@dataclass
class Component:
    """One Airflow process started by LocalAirflow."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Return the process id (also its process group id)."""
        return self.process.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process.poll() is None


class LocalAirflow:
    """An Airflow api-server, scheduler, dag-processor and triggerer on SQLite, run as child processes.

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
        self.home = Path(home).resolve()
        self.repo = Path(repo).resolve()
        self.extra_env = dict(extra_env or {})
        self.inherit_airflow_env = inherit_airflow_env
        self.api_port = api_port or int(self._outside_env().get("AIRFLOW__API__PORT") or DEFAULT_PORT)
        self.components: dict[str, Component] = {}
        self.stopped_pids: set[int] = set()
        self.default_token: str | None = None
        self._env: dict[str, str] | None = None
        self._started_at: datetime | None = None
        self._start_clock = 0.0
        self.ready_after: float | None = None  # seconds from start() to healthy, set by wait_ready()
        # Loopback only: never let an http_proxy variable route our calls elsewhere.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ----------------------------------------------------------------- environment

    @property
    def env(self) -> dict[str, str]:
        """Return the environment of the Airflow processes (creates home and its secrets once)."""
        if self._env is None:
            self._env = self._build_env()
        return self._env

    def _outside_env(self) -> dict[str, str]:
        """Return the caller's environment plus extra_env, minus Airflow variables when not inherited."""
        env = dict(os.environ)
        if not self.inherit_airflow_env:
            env = {k: v for k, v in env.items() if not _is_airflow_variable(k)}
        env.update(self.extra_env)
        return env

    def _build_env(self) -> dict[str, str]:
        """Combine the caller's environment, our defaults and extra_env (strongest last)."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in self._outside_env().items() if k not in self.extra_env}
        # The two explicit constructor arguments always win; both were resolved from the environment.
        env["AIRFLOW_HOME"] = str(self.home)
        env["AIRFLOW__API__PORT"] = str(self.api_port)
        for key, value in self._defaults().items():
            env.setdefault(key, value)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.repo), env.get("PYTHONPATH")) if p)
        env.update(self.extra_env)
        return env

    def _defaults(self) -> dict[str, str]:
        """Return the settings for a quick, self-contained start on SQLite + LocalExecutor."""
        keys = self._secrets()
        local_url = f"http://localhost:{self.api_port}"
        return {
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.repo / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.repo / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # LocalExecutor forks `parallelism` workers up front; 32 idle processes help no demo.
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": DEFAULT_USERS,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / PASSWORDS_FILE_NAME),
            # Loopback by default: SimpleAuthManager keeps plaintext passwords. Set 0.0.0.0 to share.
            "AIRFLOW__API__HOST": "127.0.0.1",
            # Without these, tasks of a stack on another port call the Execution API on :8080.
            "AIRFLOW__API__BASE_URL": local_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{local_url}/execution/",
            # Every process must sign and verify with the same keys: task tokens are minted by the
            # scheduler and checked by the API server; a per-process random key fails every task.
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            # Demo-friendly parsing: new DAG files within ~5 s, edits within ~10 s.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        }

    def _secrets(self) -> dict[str, str]:
        """Return the JWT secret, API secret key and Fernet key of this home, created once."""
        path = self.home / SECRETS_FILE_NAME
        if path.exists():
            return _read_json(path)
        # Airflow signs JWTs with HS512, and PyJWT warns about HMAC keys shorter than 64 bytes.
        keys = {"jwt_secret": secrets.token_urlsafe(64), "api_secret_key": secrets.token_urlsafe(64)}
        # A home made by plain `airflow` has a Fernet key in airflow.cfg: keep it so the connections
        # it encrypted stay readable. Otherwise a new one: 32 random bytes in URL-safe base64.
        keys["fernet_key"] = _fernet_key_from_airflow_cfg(self._airflow_cfg_path()) or (
            base64.urlsafe_b64encode(os.urandom(32)).decode()
        )
        _write_private(path, json.dumps(keys, indent=2) + "\n")
        return keys

    def _airflow_cfg_path(self) -> Path:
        """Return the airflow.cfg the processes will read."""
        return Path(self._outside_env().get("AIRFLOW_CONFIG") or self.home / "airflow.cfg")

    # ------------------------------------------------------------------ prepare

    def prepare(self, timeout: float = 600.0) -> None:
        """Create home, the passwords file and the database schema; fast when already done."""
        env = self.env
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_passwords(env)
        self._migrate(env, timeout)

    @property
    def logs_dir(self) -> Path:
        """Return the folder holding the process logs."""
        return self.home / "logs"

    @property
    def passwords_file(self) -> Path:
        """Return the SimpleAuthManager passwords file."""
        return Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])

    def _ensure_passwords(self, env: Mapping[str, str]) -> None:
        """Give every configured user a random password, keeping existing ones."""
        if env.get("AIRFLOW__CORE__AUTH_MANAGER") != SIMPLE_AUTH_MANAGER:
            return
        users = _usernames(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ""))
        current = self.passwords() if self.passwords_file.exists() else {}
        missing = [user for user in users if user not in current]
        if not missing:
            return
        for user in missing:
            current[user] = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(16))
        self.passwords_file.parent.mkdir(parents=True, exist_ok=True)
        # Same format SimpleAuthManager writes: one JSON object {"username": "password"}.
        _write_private(self.passwords_file, json.dumps(current) + "\n")

    def _migrate(self, env: Mapping[str, str], timeout: float) -> None:
        """Run `airflow db migrate` unless this Airflow version already migrated this SQLite file."""
        stamp_path = self.home / MIGRATED_STAMP_NAME
        stamp = {
            "airflow": metadata.version("apache-airflow-core"),
            "sql_alchemy_conn": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""),
        }
        if self._migration_is_current(stamp_path, stamp):
            return
        log_path = self.logs_dir / "db-migrate.log"
        with log_path.open("wb") as log:
            try:
                result = subprocess.run(
                    _airflow_command("db", "migrate"),
                    env=dict(env),
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as err:
                raise LocalAirflowError(f"`airflow db migrate` took over {timeout:.0f}s") from err
        if result.returncode != 0:
            raise LocalAirflowError(
                f"`airflow db migrate` failed (exit {result.returncode}); last lines of {log_path}:\n"
                f"{tail(log_path)}"
            )
        stamp_path.write_text(json.dumps(stamp) + "\n")

    @staticmethod
    def _migration_is_current(stamp_path: Path, stamp: dict[str, str]) -> bool:
        """Return whether the stamp matches and the SQLite file it names still exists."""
        conn = stamp["sql_alchemy_conn"]
        # Only a SQLite file is ours to trust; any other database may be changed by someone else.
        if not conn.startswith("sqlite:///") or not stamp_path.exists():
            return False
        if not Path(conn.removeprefix("sqlite:///").split("?")[0]).exists():
            return False
        try:
            return json.loads(stamp_path.read_text()) == stamp
        except ValueError:
            return False

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        """Start the four Airflow processes, each in its own process group."""
        if self.components:
            raise LocalAirflowError("already started")
        env = self.env
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._started_at = datetime.now(UTC)
        self._start_clock = time.monotonic()
        try:
            for name, args in COMPONENTS.items():
                self.components[name] = self._spawn(name, args, env)
        except BaseException:
            self.stop()
            raise

    def _spawn(
        self, name: str, args: Iterable[str], env: Mapping[str, str], *, append: bool = False
    ) -> Component:
        """Start one `airflow <args>` with its output in logs/<name>.log."""
        log_path = self.logs_dir / f"{name}.log"
        with log_path.open("ab" if append else "wb") as log:
            process = subprocess.Popen(
                _airflow_command(*args),
                env=dict(env),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session and group: a terminal's Ctrl-C reaches only us, and stop() can signal
                # each component together with the workers and parsers it forks.
                start_new_session=True,
            )
        return Component(name, process, log_path)

    def check_alive(self) -> None:
        """Raise ComponentDied if any started process has exited."""
        for component in self.components.values():
            if not component.alive():
                raise ComponentDied(component.name, component.process.returncode, component.log_path)

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Wait until the health check reports every component healthy since our start."""
        if not self.components:
            raise LocalAirflowError("start() first")

        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            status, body = self._get_quietly("/api/v2/monitor/health")
            return body if status == 200 and self._all_healthy(body) else None

        body = poll(healthy, timeout, "all Airflow components to report healthy")
        self.ready_after = time.monotonic() - self._start_clock
        return body

    def _all_healthy(self, body: Any) -> bool:
        """Return whether the health body shows the DB and fresh heartbeats of all three jobs."""
        if not isinstance(body, dict) or body.get("metadatabase", {}).get("status") != "healthy":
            return False
        # A job of a previous run in the same database may still look alive for 30 s: ask for a
        # heartbeat newer than our start.
        since = (self._started_at or datetime.now(UTC)) - timedelta(seconds=1)
        for key, job in HEALTH_JOBS.items():
            info = body.get(key) or {}
            beat = _parse_time(info.get(f"latest_{job}_heartbeat"))
            if info.get("status") != "healthy" or beat is None or beat < since:
                return False
        return True

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
        return set(roots) | set(_descendants(roots))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every process we started: SIGTERM, wait up to timeout, then SIGKILL."""
        if not self.components:
            return
        self._terminate(list(self.components.values()), timeout)
        self.components = {}

    def stop_component(self, name: str, timeout: float = 30.0) -> None:
        """Stop one component and what it forked, as an operator's restart would; the rest keep running."""
        component = self.components.pop(name, None)
        if component is None:
            raise LocalAirflowError(f"{name} is not running")
        self._terminate([component], timeout)

    def start_component(self, name: str) -> None:
        """Start again a component stopped with stop_component; its log goes on in the same file."""
        if name in self.components:
            raise LocalAirflowError(f"{name} is already running")
        self.components[name] = self._spawn(name, COMPONENTS[name], self.env, append=True)

    def _terminate(self, components: list[Component], timeout: float) -> None:
        roots = [c.pid for c in components]
        # Task processes put themselves in their own process groups, so remember every descendant
        # now, before dying parents hand them over to init where we could no longer find them.
        tracked = _descendants(roots)
        self.stopped_pids |= set(roots) | set(tracked)
        for component in components:
            _signal_group(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for component in components:
            _wait(component.process, deadline)
        tracked.update(_descendants(list(tracked)))
        self.stopped_pids |= set(tracked)
        for component in components:
            _signal_group(component.pid, signal.SIGKILL)
            _wait(component.process, time.monotonic() + 5)
        for pid, started in tracked.items():
            _signal_pid(pid, started, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in tracked) and time.monotonic() < deadline:
            time.sleep(0.1)

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

    # ------------------------------------------------------------------ REST

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
        return f"http://{_url_host(host)}:{self.api_port}{root}"

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        *,
        auth: bool = True,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """Call the API server and return (status, decoded JSON or text); the default token if none given."""
        headers = {"Accept": "application/json"}
        bearer = token or (self.default_token if auth else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.api_url + path
        request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())

    def _get_quietly(self, path: str) -> tuple[int, Any]:
        """GET without a token, mapping connection failures to status 0."""
        try:
            return self.api("GET", path, auth=False, timeout=5)
        except (OSError, http.client.HTTPException):  # URLError is an OSError
            return 0, None

    def _expect(self, method: str, path: str, body: Any = None, ok: Iterable[int] = (200,)) -> Any:
        """Call the API and return the body, raising ApiError on any other status."""
        status, answer = self.api(method, path, body)
        if status not in tuple(ok):
            raise ApiError(method, path, status, answer)
        return answer

    def passwords(self) -> dict[str, str]:
        """Return the SimpleAuthManager passwords by username."""
        return _read_json(self.passwords_file)

    def token(self, username: str, password: str) -> str:
        """Log in through `POST /auth/token` and return the JWT."""
        status, answer = self.api(
            "POST", "/auth/token", {"username": username, "password": password}, auth=False
        )
        if status != 201 or not isinstance(answer, dict):
            raise ApiError("POST", "/auth/token", status, answer)
        return answer["access_token"]

    def login(self, username: str = "admin") -> str:
        """Log in as a configured user and make the token the default for api()."""
        self.default_token = self.token(username, self.passwords()[username])
        return self.default_token

    def wait_for_dag(
        self, dag_id: str, timeout: float = 120.0, *, fail_on_import_error: bool = False
    ) -> dict[str, Any]:
        """Wait until the DAG has been parsed and return it; optionally stop at the first import error."""
        path = f"/api/v2/dags/{_q(dag_id)}"

        def parsed() -> dict[str, Any] | None:
            self.check_alive()
            status, answer = self.api("GET", path)
            if status == 200:
                return answer
            if fail_on_import_error and self.import_errors():
                raise LocalAirflowError(f"DAG {dag_id!r} is not loaded. {self.import_errors_text()}")
            return None

        try:
            return poll(parsed, timeout, f"DAG {dag_id!r} to be parsed", interval=1.0)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{self.import_errors_text()}") from err

    def import_errors(self) -> list[dict[str, Any]]:
        """Return the DAG import errors Airflow reports."""
        status, answer = self.api("GET", "/api/v2/importErrors?limit=20")
        return answer.get("import_errors", []) if status == 200 and isinstance(answer, dict) else []

    def import_errors_text(self) -> str:
        """Return the DAG import errors Airflow reports, as text."""
        errors = self.import_errors()
        if not errors:
            return "Airflow reports no DAG import errors."
        return "DAG import errors:\n" + "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)

    def unpause(self, dag_id: str) -> dict[str, Any]:
        """Unpause the DAG."""
        path = f"/api/v2/dags/{_q(dag_id)}?update_mask=is_paused"
        return self._expect("PATCH", path, {"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> dict:
        """Start a manual run and return it."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        return self._expect("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body)

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        states: Iterable[str] = ("success",),
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Wait until the run reaches one of states; fail at once if it ends in another."""
        wanted = set(states)
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"

        def finished() -> dict[str, Any] | None:
            self.check_alive()
            run = self._expect("GET", path)
            if run["state"] in wanted:
                return run
            if run["state"] in TERMINAL_RUN_STATES:
                raise LocalAirflowError(
                    f"run {run_id} ended {run['state']}, wanted {sorted(wanted)}; "
                    f"tasks: {self.task_states(dag_id, run_id)}"
                )
            return None

        return poll(finished, timeout, f"run {run_id} to reach {sorted(wanted)}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return {task_id: state} of a run (mapped instances as task_id[index])."""
        states: dict[str, str | None] = {}
        base = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        offset, limit = 0, 100
        while True:
            page = self._expect("GET", f"{base}?limit={limit}&offset={offset}")
            for ti in page["task_instances"]:
                index = ti.get("map_index", -1)
                states[ti["task_id"] if index == -1 else f"{ti['task_id']}[{index}]"] = ti["state"]
            offset += limit
            if offset >= page["total_entries"]:
                return states

    def wait_until(
        self, check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
    ) -> T:
        """Poll check until it returns something other than None; fail at once if a process died."""

        def checked() -> T | None:
            self.check_alive()
            return check()

        return poll(checked, timeout, what, interval)


# ---------------------------------------------------------------------- helpers


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call check until it returns something truthy, or raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, remaining))


def _is_airflow_variable(name: str) -> bool:
    """Return whether a variable configures Airflow or the product."""
    return name.startswith("AIRFLOW") or name in PRODUCT_ENV


def _read_json(path: Path) -> Any:
    """Read a JSON file we or Airflow wrote, with a clear error if it was damaged."""
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise LocalAirflowError(f"{path} is not valid JSON ({err}); fix or delete it") from err


def port_free(host: str, port: int) -> bool:
    """Return whether a TCP port can be bound on host right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _airflow_command(*args: str) -> list[str]:
    """Return the command line running `airflow <args>` through the launcher."""
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args]


def _usernames(users: str) -> list[str]:
    """Return the usernames of a `name:role[:teams],...` setting."""
    return [entry.split(":")[0].strip() for entry in users.split(",") if entry.strip()]


def _fernet_key_from_airflow_cfg(path: Path) -> str:
    """Return the Fernet key an existing airflow.cfg holds, or ''."""
    if not path.is_file():
        return ""
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path)
    except configparser.Error:
        return ""
    return parser.get("core", "fernet_key", fallback="").strip()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _parse_time(value: Any) -> datetime | None:
    """Parse an ISO 8601 time from the API, treating a naive one as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _decode(raw: bytes) -> Any:
    """Decode a response body: JSON when possible, else text, None when empty."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _q(segment: str) -> str:
    """Quote one path segment (run ids hold ':' and '+')."""
    return urllib.parse.quote(segment, safe="")


def _url_host(host: str) -> str:
    """Bracket an IPv6 literal for use in a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a text file ('' if missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64_000))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """Return (state, parent pid, start time) of a process from /proc, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields follow the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def _descendants(roots: Iterable[int]) -> dict[int, str]:
    """Return {pid: start time} of every live descendant of roots (empty without /proc)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found: dict[int, str] = {}
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found[child] = starts[child]
                pending.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """Return whether a process exists and is not a zombie."""
    stat = _proc_stat(pid)
    if stat is not None:
        return stat[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path("/proc").is_dir()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, started: str, sig: signal.Signals) -> None:
    """Signal a process only if it is still the one we saw (pids get reused)."""
    stat = _proc_stat(pid)
    if stat is not None and stat[2] == started:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait(process: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait for a child until the deadline, without raising."""
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass


# ---------------------------------------------------------------------- CLI


def _say(message: str) -> None:
    """Print one line of progress."""
    print(message, flush=True)


class _Stop(Exception):
    """Raised in the main thread on SIGTERM."""


def _raise_stop(signum: int, frame: Any) -> None:
    """Turn SIGTERM into an exception so the finally block stops the stack."""
    raise _Stop


def _start_demo(stack: LocalAirflow, alert_path: Path, timeout: float) -> None:
    """Unpause the incident_response DAG and trigger one demo incident."""
    _say(f"Waiting for DAG {DEMO_DAG_ID} to be parsed ...")
    try:
        stack.wait_for_dag(DEMO_DAG_ID, timeout, fail_on_import_error=True)
    except (TimeoutError, LocalAirflowError) as err:
        _say(f"DAG {DEMO_DAG_ID} did not appear, so no demo run was started.\n{err}")
        return
    stack.unpause(DEMO_DAG_ID)
    if not alert_path.is_file():
        _say(f"No demo alert at {alert_path} yet; trigger {DEMO_DAG_ID} from the UI instead.")
        return
    try:
        conf = json.loads(alert_path.read_text())
    except ValueError as err:
        _say(f"Demo alert {alert_path} is not valid JSON ({err}); no demo run was started.")
        return
    run = stack.trigger(DEMO_DAG_ID, conf)
    _say(f"Triggered demo incident {alert_path.name}: run {run['dag_run_id']}")


def _print_banner(stack: LocalAirflow, username: str | None) -> None:
    """Print where to go and how to log in."""
    lines = ["", f"Airflow is running: {stack.ui_url}/"]
    if username:
        lines.append(f"  login:     {username} / {stack.passwords()[username]}")
    lines += [
        f"  approvals: {stack.ui_url}/incident-response/",
        f"  passwords: {stack.passwords_file}",
        f"  logs:      {stack.logs_dir}/",
        "Press Ctrl-C to stop.",
        "",
    ]
    _say("\n".join(lines))


def _login_user(stack: LocalAirflow) -> str | None:
    """Log in as admin (or the first configured user) when SimpleAuthManager is in use."""
    if stack.env.get("AIRFLOW__CORE__AUTH_MANAGER") != SIMPLE_AUTH_MANAGER:
        return None
    users = stack.passwords()
    username = "admin" if "admin" in users else next(iter(users), None)
    if username:
        stack.login(username)
    return username


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Run Airflow locally with the incident_response DAG.")
    parser.add_argument("--no-demo", action="store_true", help="do not trigger the demo incident")
    parser.add_argument("--alert", type=Path, default=REPO / DEMO_ALERT, help="alert JSON for the demo run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for start-up")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Prepare, start and watch the local Airflow until Ctrl-C; return the exit code."""
    args = _parse_args(argv)
    home = Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow")
    stack = LocalAirflow(home, repo=REPO)
    signal.signal(signal.SIGTERM, _raise_stop)
    # Launched from a script, SIGINT may arrive ignored; Ctrl-C must still stop what we start.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run(stack, args)
    except (KeyboardInterrupt, _Stop):
        _say("\nStopping Airflow ...")
        return 0
    except (LocalAirflowError, TimeoutError, OSError) as err:
        _say(f"Error: {err}")
        return 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack.components:
            stack.stop()
            _say("Stopped.")


def _run(stack: LocalAirflow, args: argparse.Namespace) -> int:
    """Start the stack and the demo, then block until a process dies (returns 1) or we are stopped."""
    host = stack.env.get("AIRFLOW__API__HOST", "127.0.0.1")
    if not port_free(host, stack.api_port):
        _say(f"Port {stack.api_port} is in use; choose another, e.g. AIRFLOW__API__PORT=8090 make run")
        return 1
    _say(f"Preparing Airflow in {stack.home} ...")
    stack.prepare()
    _say("Starting api-server, scheduler, dag-processor and triggerer ...")
    stack.start()
    stack.wait_ready(args.timeout)
    _say(f"Airflow is up after {stack.ready_after:.0f}s.")
    username = _login_user(stack)
    if not args.no_demo and username:
        _start_demo(stack, args.alert, args.timeout)
    _print_banner(stack, username)
    died = stack.wait_for_exit()
    _say(str(ComponentDied(died.name, died.process.returncode, died.log_path)))
    _say("Stopping the other processes ...")
    return 1


if __name__ == "__main__":
    sys.exit(main())
