"""The embedded PostgreSQL holding the metadata DB: pgserver's self-contained server, data under AIRFLOW_HOME.

SQLite lets one writer in at a time and makes the others poll for the lock without any order; under a
burst of triggers and webhooks while tasks run, some wait past any busy timeout and Airflow answers 500
(its scheduler dies the same way). PostgreSQL locks rows, so the same burst is answered in seconds.

The server listens on a Unix socket inside its data folder only (no TCP port), so stacks never clash
and nothing is reachable from the network. pgserver ships the server binaries in its wheel; it is run
in a child process so this package stays free of third-party imports.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import LocalAirflowError
from .files import tail

DATA_DIR_NAME = "postgres"
DATABASE = "airflow"

# pgserver creates the cluster on first use (trust auth, Unix socket only) and starts the server if
# it is not running; the server outlives this child and is stopped by stop() below.
_START = """
import sys
import pgserver
server = pgserver.get_server(sys.argv[1], cleanup_mode=None)
if sys.argv[2] not in server.psql("SELECT datname FROM pg_database;").split():
    server.psql(f"CREATE DATABASE {sys.argv[2]};")
    print("created")
"""


def available() -> bool:
    """Return whether pgserver is installed in this Python."""
    return importlib.util.find_spec("pgserver") is not None


def sql_alchemy_conn(data_dir: Path) -> str:
    """Return the metadata DB URL of the server whose data (and socket) is in data_dir."""
    return f"postgresql+psycopg2://postgres@/{DATABASE}?host={data_dir}"


def is_embedded(conn: str, data_dir: Path) -> bool:
    """Return whether conn is the embedded server of data_dir."""
    return conn == sql_alchemy_conn(data_dir)


def start(data_dir: Path, log_path: Path, timeout: float) -> bool:
    """Create the cluster and the airflow database if missing, start the server if not running.

    Returns whether the database was created (it is empty).
    """
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                [sys.executable, "-c", _START, str(data_dir), DATABASE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise LocalAirflowError(f"the embedded PostgreSQL took over {timeout:.0f}s to start") from err
    if result.returncode != 0:
        raise LocalAirflowError(
            f"the embedded PostgreSQL did not start (exit {result.returncode}); last lines of {log_path}:\n"
            f"{tail(log_path)}"
        )
    return result.stdout.strip() == b"created"


def server_pid(data_dir: Path) -> int | None:
    """Return the process id of the running server of data_dir, or None."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    # A server killed outright leaves its pid file behind, and the pid may now be another process.
    if Path("/proc").is_dir():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"postgres" not in command or str(data_dir).encode() not in command:
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by pgserver's own user when we run as root
    return pid


def stop(data_dir: Path, timeout: float = 30.0) -> None:
    """Stop the server of data_dir: fast shutdown (SIGINT), then SIGKILL after timeout."""
    pid = server_pid(data_dir)
    if pid is None:
        return
    # PostgreSQL's "fast shutdown": roll back open transactions, write a checkpoint, exit.
    _signal(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while server_pid(data_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if server_pid(data_dir) == pid:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal a process, ignoring one that is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
