"""One-off preparation of the docker compose deployment, run by the `airflow-init` service.

In order: refuse to go on when a secret is missing or unusable, migrate Airflow's metadata database,
create the incident store's role and database next to it, give every SimpleAuthManager user a password,
and hand the shared volumes to the user the other services run as. Every step can run again: compose
runs this service on each `docker compose up`.

Standard library only, plus psycopg2 and SQLAlchemy's URL parser, which the image has.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

NEW_ENV = "python3 docker/new_env.py"

# name -> how to make one by hand (the same commands as .env.example).
REQUIRED = {
    "AIRFLOW__API_AUTH__JWT_SECRET": "python3 -c 'import secrets; print(secrets.token_urlsafe(64))'",
    "AIRFLOW__API__SECRET_KEY": "python3 -c 'import secrets; print(secrets.token_urlsafe(64))'",
    "AIRFLOW__CORE__FERNET_KEY": (
        "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
    ),
    "POSTGRES_PASSWORD": "python3 -c 'import secrets; print(secrets.token_hex(24))'",
    "INCIDENT_STORE_PASSWORD": "python3 -c 'import secrets; print(secrets.token_hex(24))'",
}
# Airflow signs task and UI tokens with HS512; RFC 7518 asks for a key at least as long as the hash.
MIN_SECRET_LENGTH = 64
# The passwords are written into connection URLs as they are, so they must need no escaping there.
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
DEFAULT_PASSWORDS_FILE = "/opt/airflow/config/simple_auth_manager_passwords.json.generated"


class InitError(RuntimeError):
    """A step cannot be done; the message says what to change."""


def check_settings(env: dict[str, str]) -> list[str]:
    """Return one readable problem per missing or unusable secret (empty when all is well)."""
    problems = []
    for name, command in REQUIRED.items():
        if not env.get(name):
            problems.append(f"{name} is not set: run `{NEW_ENV}` to write .env, or add `{name}=$({command})`")
    for name in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        value = env.get(name) or ""
        if value and len(value) < MIN_SECRET_LENGTH:
            problems.append(
                f"{name} is {len(value)} characters; use at least {MIN_SECRET_LENGTH}: {REQUIRED[name]}"
            )
    fernet = env.get("AIRFLOW__CORE__FERNET_KEY") or ""
    # Airflow accepts several comma-separated keys (new first) to rotate them.
    for key in filter(None, (part.strip() for part in fernet.split(","))):
        if not _is_fernet_key(key):
            problems.append(
                "AIRFLOW__CORE__FERNET_KEY is not a Fernet key (32 bytes in URL-safe base64): "
                + REQUIRED["AIRFLOW__CORE__FERNET_KEY"]
            )
            break
    for name in ("POSTGRES_PASSWORD", "INCIDENT_STORE_PASSWORD"):
        value = env.get(name) or ""
        if value and not URL_SAFE.fullmatch(value):
            problems.append(
                f"{name} may hold only letters, digits and . _ ~ - (it goes into connection URLs): "
                + REQUIRED[name]
            )
    return problems


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


# -- the incident store ------------------------------------------------------------------------------


def store_target(conn_value: str) -> dict[str, str | int | None]:
    """Return login, password, host, port and database of an `incident_store` connection (URI or JSON)."""
    if conn_value.lstrip().startswith("{"):
        data = json.loads(conn_value)
        kind = data.get("conn_type", "")
        target = {
            "user": data.get("login"),
            "password": data.get("password"),
            "host": data.get("host"),
            "port": data.get("port"),
            "dbname": data.get("schema"),
        }
    else:
        parts = urlsplit(conn_value)
        kind = parts.scheme
        target = {
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "host": parts.hostname,
            "port": parts.port,
            "dbname": unquote(parts.path.lstrip("/")) or None,
        }
    if kind not in ("postgres", "postgresql"):
        raise InitError(f"the incident_store connection has type {kind!r}; this deployment expects postgres")
    if not target["user"] or not target["dbname"]:
        raise InitError("the incident_store connection must name a login and a database")
    return target


def admin_target(sql_alchemy_conn: str) -> dict[str, str | int | None]:
    """Return the connection arguments of Airflow's metadata database (its owner creates the store)."""
    from sqlalchemy.engine import make_url

    url = make_url(sql_alchemy_conn)
    if not url.drivername.startswith("postgresql"):
        raise InitError(f"the metadata database is {url.drivername}; this deployment expects PostgreSQL")
    return {
        "user": url.username,
        "password": url.password,
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
    }


def ensure_store_database(admin: dict, store: dict) -> str:
    """Create (or update) the store's role and database on the metadata DB's server; say what was done.

    The role's password is set on every run, so changing INCIDENT_STORE_PASSWORD in .env takes effect
    at the next `docker compose up`.
    """
    import psycopg2
    from psycopg2 import sql

    same_server = (store["host"], store["port"] or 5432) == (admin["host"], admin["port"] or 5432)
    if not same_server:
        return f"incident store on {store['host']}: not on this deployment's PostgreSQL, left to its owner"
    try:
        connection = psycopg2.connect(**{k: v for k, v in admin.items() if v is not None}, connect_timeout=10)
    except psycopg2.Error as err:
        raise InitError(f"cannot reach the metadata database to create the incident store: {err}") from err
    # CREATE DATABASE cannot run inside a transaction.
    connection.autocommit = True
    done = []
    try:
        with connection.cursor() as cur:
            role, database = store["user"], store["dbname"]
            if role != admin["user"]:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD %s").format(sql.Identifier(role)),
                    (store["password"],),
                )
                done.append(f"role {role} {'updated' if verb == 'ALTER' else 'created'}")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone():
                done.append(f"database {database} present")
            else:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
                done.append(f"database {database} created")
    except psycopg2.Error as err:
        raise InitError(f"cannot create the incident store's role or database: {err}") from err
    finally:
        connection.close()
    return "incident store: " + ", ".join(done)


# -- users -------------------------------------------------------------------------------------------


def usernames(users_setting: str) -> list[str]:
    """Return the user names of `[core] simple_auth_manager_users` ("admin:admin,oncall:user")."""
    return [item.split(":", 1)[0].strip() for item in users_setting.split(",") if item.strip()]


def ensure_passwords(path: Path, users: list[str]) -> list[str]:
    """Give every user without one a random password in SimpleAuthManager's file; return those users."""
    current = json.loads(path.read_text().strip() or "{}") if path.exists() else {}
    missing = [user for user in users if user not in current]
    if missing:
        for user in missing:
            current[user] = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        # Private from the first byte: the file holds plaintext passwords.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(current) + "\n")
        os.replace(temporary, path)
    if path.exists():
        os.chmod(path, 0o600)
    return missing


# -- main --------------------------------------------------------------------------------------------


def hand_over(paths: list[Path], uid: int) -> None:
    """Give the shared volumes to the user every other service runs as (group 0, as Airflow's image)."""
    for top in paths:
        top.mkdir(parents=True, exist_ok=True)
        os.chown(top, uid, 0)
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, 0, follow_symlinks=False)


def main() -> int:
    env = dict(os.environ)
    problems = check_settings(env)
    if problems:
        print("airflow-init: cannot start this deployment:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    try:
        print("airflow-init: migrating the metadata database", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True)
        admin = admin_target(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        store = store_target(env.get("AIRFLOW_CONN_INCIDENT_STORE") or "")
        print(f"airflow-init: {ensure_store_database(admin, store)}", flush=True)
        passwords_file = Path(
            env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or DEFAULT_PASSWORDS_FILE
        )
        users = usernames(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ""))
        created = ensure_passwords(passwords_file, users)
        print(
            f"airflow-init: users {', '.join(users)} ({len(created)} new password(s)); read them with\n"
            f"  docker compose exec airflow-apiserver cat {passwords_file}",
            flush=True,
        )
        if os.geteuid() == 0:
            uid = int(env.get("AIRFLOW_UID") or 50000)
            logs = Path(env.get("AIRFLOW_HOME") or "/opt/airflow") / "logs"
            hand_over([logs, passwords_file.parent], uid)
    except subprocess.CalledProcessError as err:
        print(f"airflow-init: `airflow db migrate` failed (exit {err.returncode})", file=sys.stderr)
        return 1
    except InitError as err:
        print(f"airflow-init: {err}", file=sys.stderr)
        return 1
    print("airflow-init: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
