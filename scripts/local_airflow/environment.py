"""The environment of the Airflow processes: the caller's, our defaults (embedded DB, LocalExecutor)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from . import postgres

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 8080
DEFAULT_USERS = "admin:admin,oncall:user"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"
# Variables the product itself reads from the environment; dropped with the Airflow ones for hermetic tests.
PRODUCT_ENV = ("SLACK_SIGNING_SECRET", "INCIDENT_WEBHOOK_TOKEN")


def is_airflow_variable(name: str) -> bool:
    """Return whether a variable configures Airflow or the product."""
    return name.startswith("AIRFLOW") or name in PRODUCT_ENV


def outside_env(extra_env: Mapping[str, str], inherit_airflow_env: bool) -> dict[str, str]:
    """Return the caller's environment plus extra_env, minus Airflow variables when not inherited."""
    env = dict(os.environ)
    if not inherit_airflow_env:
        env = {k: v for k, v in env.items() if not is_airflow_variable(k)}
    env.update(extra_env)
    return env


def airflow_cfg_path(outside: Mapping[str, str], home: Path) -> Path:
    """Return the airflow.cfg the processes will read."""
    return Path(outside.get("AIRFLOW_CONFIG") or home / "airflow.cfg")


def build_env(
    outside: Mapping[str, str],
    extra_env: Mapping[str, str],
    defaults: Mapping[str, str],
    *,
    home: Path,
    repo: Path,
    api_port: int,
) -> dict[str, str]:
    """Combine the caller's environment, our defaults and extra_env (strongest last)."""
    env = {k: v for k, v in outside.items() if k not in extra_env}
    # The two explicit constructor arguments always win; both were resolved from the environment.
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__API__PORT"] = str(api_port)
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p)
    env.update(extra_env)
    return env


def default_sql_alchemy_conn(home: Path) -> str:
    """Return the embedded PostgreSQL of home when pgserver is installed, else a SQLite file in home."""
    if postgres.available():
        return postgres.sql_alchemy_conn(home / postgres.DATA_DIR_NAME)
    return f"sqlite:///{home / 'airflow.db'}"


def defaults(home: Path, repo: Path, api_port: int, keys: Mapping[str, str]) -> dict[str, str]:
    """Return the settings for a quick, self-contained start on an embedded DB + LocalExecutor."""
    local_url = f"http://localhost:{api_port}"
    return {
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor forks `parallelism` workers up front; 32 idle processes help no demo.
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": default_sql_alchemy_conn(home),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": DEFAULT_USERS,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE_NAME),
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
