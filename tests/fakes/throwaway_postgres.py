"""A throw-away PostgreSQL server on a loopback port, from Debian's binaries, that a test may restart."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

__all__ = ["ThrowawayPostgres", "available"]

# A server that is not up within this is broken; a test must not wait on it longer.
START_TIMEOUT = 60


def _bin_dir() -> Path | None:
    """Return the newest /usr/lib/postgresql/<version>/bin holding pg_ctl, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def available() -> bool:
    """Say whether PostgreSQL binaries are installed (and, as root, the postgres user exists)."""
    if _bin_dir() is None:
        return False
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


def _free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """initdb into a fresh folder, serve on 127.0.0.1:<free port> with trust auth; removed on exit.

    PostgreSQL refuses to run as root, so as root every command runs as the ``postgres`` user.
    """

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin_dir = bin_dir
        self.port = _free_port()
        # Not under pytest's tmp folders: those are closed to other users, the server's included.
        self.root = Path(tempfile.mkdtemp(prefix="throwaway-postgres-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def connection_json(self) -> str:
        """Return an Airflow ``postgres`` connection (JSON, for ``AIRFLOW_CONN_*``) to it."""
        connection = {"conn_type": "postgres", "host": "127.0.0.1", "port": self.port}
        return json.dumps({**connection, "login": "postgres", "schema": "postgres"})

    def _run(self, *args: str) -> None:
        """Run one PostgreSQL command (as postgres when we are root); raise with its log on failure."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, timeout=START_TIMEOUT, check=False)
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr.decode(errors='replace')}\n{log}")

    def start(self) -> None:
        """Create the cluster on first use, then start the server and wait until it accepts connections."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not self.data_dir.exists():
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected; ``immediate``: as a crash)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, stay down for a while (bounded), and start it again on the same port."""
        self.stop()
        time.sleep(min(down_for, 30.0))
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
