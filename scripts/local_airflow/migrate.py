"""Create or upgrade the metadata database schema with `airflow db migrate`, once per Airflow version."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from . import postgres
from .errors import LocalAirflowError
from .files import tail
from .processes import airflow_command

MIGRATED_STAMP_NAME = "local_airflow_migrated.json"


def migrate(env: Mapping[str, str], home: Path, logs_dir: Path, timeout: float) -> None:
    """Run `airflow db migrate` unless this Airflow version already migrated this home's own database."""
    stamp_path = home / MIGRATED_STAMP_NAME
    stamp = {
        "airflow": metadata.version("apache-airflow-core"),
        "sql_alchemy_conn": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""),
    }
    if migration_is_current(stamp_path, stamp, home):
        return
    log_path = logs_dir / "db-migrate.log"
    with log_path.open("wb") as log:
        try:
            result = subprocess.run(
                airflow_command("db", "migrate"),
                env=dict(env),
                cwd=home,
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


def forget_migration(home: Path) -> None:
    """Make the next migrate() run `airflow db migrate` (the database was created anew)."""
    (home / MIGRATED_STAMP_NAME).unlink(missing_ok=True)


def migration_is_current(stamp_path: Path, stamp: dict[str, str], home: Path) -> bool:
    """Return whether the stamp matches and the database it names is still this home's own."""
    if not stamp_path.exists() or not _own_database_exists(stamp["sql_alchemy_conn"], home):
        return False
    try:
        return json.loads(stamp_path.read_text()) == stamp
    except ValueError:
        return False


def _own_database_exists(conn: str, home: Path) -> bool:
    """Return whether conn is a SQLite file or the embedded PostgreSQL of home, and exists."""
    # Only our own files are ours to trust; any other database may be changed by someone else.
    if conn.startswith("sqlite:///"):
        return Path(conn.removeprefix("sqlite:///").split("?")[0]).exists()
    data_dir = home / postgres.DATA_DIR_NAME
    return postgres.is_embedded(conn, data_dir) and (data_dir / "PG_VERSION").exists()
