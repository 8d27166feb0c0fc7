"""The outside services of the Celery topology: check that Redis answers, create the PostgreSQL databases.

Stdlib only: Redis is asked with a raw PING over a socket; the databases are created by a small
child running this Python with psycopg2 (installed with the postgres provider).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass

from .errors import LocalAirflowError

POSTGRES_HINT = (
    "start PostgreSQL (e.g. `sudo service postgresql start`, or `docker run -p 127.0.0.1:5432:5432 "
    "-e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`), or point the setting at a server that runs"
)
REDIS_HINT = (
    "start Redis (e.g. `sudo service redis-server start`, or `docker run -p 127.0.0.1:6379:6379 "
    "redis:7`), or point AIRFLOW__CELERY__BROKER_URL at a broker that runs"
)


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database to create if missing, and the setting that named it."""

    setting: str
    host: str
    port: int
    user: str
    password: str
    name: str

    @property
    def shown(self) -> str:
        """Return where it is, without the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"


def shown_url(url: str) -> str:
    """Return url with any password replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def database_of(setting: str, value: str) -> Database | None:
    """Return the PostgreSQL database a SQLAlchemy URL or Airflow connection names (None: not PostgreSQL)."""
    value = value.strip()
    if value.startswith("{"):
        try:
            conn = json.loads(value)
        except ValueError as err:
            raise LocalAirflowError(f"{setting} is not valid JSON ({err})") from err
        if str(conn.get("conn_type", "")).lower() not in ("postgres", "postgresql"):
            return None
        return Database(
            setting,
            conn.get("host") or "127.0.0.1",
            int(conn.get("port") or 5432),
            conn.get("login") or "postgres",
            conn.get("password") or "",
            conn.get("schema") or "postgres",
        )
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.split("+")[0] not in ("postgres", "postgresql"):
        return None
    # A Unix socket folder comes as ?host=/path (SQLAlchemy and libpq both read it).
    socket_dir = urllib.parse.parse_qs(parts.query).get("host", [""])[0]
    return Database(
        setting,
        socket_dir or parts.hostname or "127.0.0.1",
        parts.port or 5432,
        urllib.parse.unquote(parts.username or "postgres"),
        urllib.parse.unquote(parts.password or ""),
        urllib.parse.unquote(parts.path.lstrip("/")) or "postgres",
    )


# Connects to the server's maintenance database and creates each missing database. Prints JSON:
# {"created": [...]} or {"unreachable": "<error>", "database": "<shown url>"}.
_CREATE = """
import json, sys
import psycopg2
from psycopg2 import sql
created = []
for db in json.loads(sys.stdin.read()):
    try:
        conn = psycopg2.connect(host=db["host"], port=db["port"], user=db["user"],
                                password=db["password"] or None, dbname="postgres", connect_timeout=5)
    except psycopg2.OperationalError as err:
        print(json.dumps({"unreachable": str(err).strip(), "database": db["shown"]}))
        sys.exit(0)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db["name"],))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["name"])))
            created.append(db["shown"])
    conn.close()
print(json.dumps({"created": created}))
"""


def ensure_databases(databases: list[Database], timeout: float = 60.0) -> list[str]:
    """Create each missing database; return those created. Raise a clear error if a server is out of reach."""
    if not databases:
        return []
    payload = [{**db.__dict__, "shown": db.shown} for db in databases]
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CREATE],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise LocalAirflowError(f"PostgreSQL did not answer within {timeout:.0f}s; {POSTGRES_HINT}") from err
    if result.returncode != 0:
        raise LocalAirflowError(
            "could not create the PostgreSQL databases (is psycopg2 installed? `make venv`):\n"
            + result.stderr.decode(errors="replace")[-2000:]
        )
    answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
    if "unreachable" in answer:
        setting = next(db.setting for db in databases if db.shown == answer["database"])
        raise LocalAirflowError(
            f"cannot reach PostgreSQL at {answer['database']} (from {setting}): {answer['unreachable']}\n"
            f"To fix: {POSTGRES_HINT}."
        )
    return list(answer["created"])


def _command(*words: str) -> bytes:
    """Encode one Redis command in RESP."""
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def check_redis(url: str, timeout: float = 5.0) -> None:
    """Raise a clear error unless the Redis broker at url answers PING."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return  # another broker (RabbitMQ, SQS): Celery itself will say if it is out of reach
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    where = shown_url(url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = (
                ssl.create_default_context().wrap_socket(raw, server_hostname=host)
                if parts.scheme == "rediss"
                else raw
            )
            if parts.password:
                words = [urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password)]
                sock.sendall(_command("AUTH", *[w for w in words if w]))
                sock.recv(512)
            sock.sendall(_command("PING"))
            answer = sock.recv(512)
    except OSError as err:
        raise LocalAirflowError(
            f"cannot reach Redis at {where} (AIRFLOW__CELERY__BROKER_URL): {err}\nTo fix: {REDIS_HINT}."
        ) from err
    if not answer.startswith(b"+PONG"):
        reply = answer.decode(errors="replace").strip()
        raise LocalAirflowError(
            f"Redis at {where} (AIRFLOW__CELERY__BROKER_URL) refused PING: {reply}\n"
            "To fix: put the broker's password in the URL (redis://:PASSWORD@host:6379/0)."
        )
