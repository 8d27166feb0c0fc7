"""docker/airflow_init.py: the checks, the incident store's creation and the users, run here."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.deploy.helpers import REPO, load_script

airflow_init = load_script("airflow_init")
new_env = load_script("new_env")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


@pytest.fixture
def settings() -> dict[str, str]:
    return new_env.fresh_secrets()


def test_generated_settings_pass(settings: dict[str, str]) -> None:
    assert airflow_init.check_settings(settings) == []


@pytest.mark.parametrize("name", sorted(airflow_init.REQUIRED))
@pytest.mark.parametrize("missing", [None, ""])
def test_a_missing_secret_is_named_with_how_to_make_it(settings, name: str, missing: str | None) -> None:
    if missing is None:
        del settings[name]
    else:
        settings[name] = missing
    problems = airflow_init.check_settings(settings)
    assert len(problems) == 1
    assert name in problems[0] and "docker/new_env.py" in problems[0] and "python3 -c" in problems[0]


@pytest.mark.parametrize("name", ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"])
def test_a_short_signing_secret_is_refused(settings, name: str) -> None:
    settings[name] = "x" * 63
    assert [p for p in airflow_init.check_settings(settings) if name in p and "at least 64" in p]


@pytest.mark.parametrize(
    "key",
    ["not-a-fernet-key", base64.urlsafe_b64encode(os.urandom(16)).decode(), "é" * 44],
)
def test_a_malformed_fernet_key_is_refused(settings, key: str) -> None:
    settings["AIRFLOW__CORE__FERNET_KEY"] = key
    assert airflow_init.check_settings(settings) != []


def test_fernet_keys_being_rotated_are_accepted(settings) -> None:
    old = new_env.fresh_secrets()["AIRFLOW__CORE__FERNET_KEY"]
    settings["AIRFLOW__CORE__FERNET_KEY"] = f"{settings['AIRFLOW__CORE__FERNET_KEY']},{old}"
    assert airflow_init.check_settings(settings) == []


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "INCIDENT_STORE_PASSWORD"])
def test_a_password_that_would_break_a_url_is_refused(settings, name: str) -> None:
    settings[name] = "p@ss/w:rd"
    assert [p for p in airflow_init.check_settings(settings) if name in p]


def test_main_stops_before_anything_when_secrets_are_missing(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(REPO / "docker" / "airflow_init.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "migrating" not in result.stdout
    for name in airflow_init.REQUIRED:
        assert name in result.stderr


# -- connections ---------------------------------------------------------------------------------


def test_store_target_reads_uri_and_json() -> None:
    uri = airflow_init.store_target("postgres://incident_store:s3cret@postgres:5432/incident_store")
    as_json = airflow_init.store_target(
        json.dumps(
            {
                "conn_type": "postgres",
                "login": "incident_store",
                "password": "s3cret",
                "host": "postgres",
                "port": 5432,
                "schema": "incident_store",
            }
        )
    )
    expected = {
        "user": "incident_store",
        "password": "s3cret",
        "host": "postgres",
        "port": 5432,
        "dbname": "incident_store",
    }
    assert uri == as_json == expected


@pytest.mark.parametrize(
    "value", ["sqlite:////opt/airflow/incident_store.db", "postgres://postgres:5432/incident_store", ""]
)
def test_store_target_refuses_what_it_cannot_create(value: str) -> None:
    with pytest.raises(airflow_init.InitError):
        airflow_init.store_target(value)


def test_admin_target_reads_the_metadata_url() -> None:
    admin = airflow_init.admin_target("postgresql+psycopg2://airflow:pw@postgres:5432/airflow")
    assert admin == {
        "user": "airflow",
        "password": "pw",
        "host": "postgres",
        "port": 5432,
        "dbname": "airflow",
    }
    with pytest.raises(airflow_init.InitError):
        airflow_init.admin_target("sqlite:////opt/airflow/airflow.db")


def test_a_store_on_another_server_is_left_alone() -> None:
    admin = {"user": "airflow", "password": "pw", "host": "postgres", "port": None, "dbname": "airflow"}
    store = {"user": "s", "password": "pw", "host": "db.example.internal", "port": 5432, "dbname": "s"}
    # No connection is attempted: the host does not resolve here.
    assert "left to its owner" in airflow_init.ensure_store_database(admin, store)


@pytest.fixture
def admin_connection():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        connection = psycopg2.connect(**PG, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} as user postgres ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    connection.autocommit = True
    yield connection
    connection.close()


def test_store_role_and_database_are_created_once(admin_connection) -> None:
    name = f"ir_deploy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    store = {"user": name, "password": "first", "host": PG["host"], "port": PG["port"], "dbname": name}
    try:
        first = airflow_init.ensure_store_database(PG, store)
        assert first == f"incident store: role {name} created, database {name} created"
        again = airflow_init.ensure_store_database(PG, {**store, "password": "rotated"})
        assert again == f"incident store: role {name} updated, database {name} present"
        with admin_connection.cursor() as cur:
            cur.execute(
                "SELECT r.rolname, r.rolcanlogin, r.rolsuper FROM pg_database d "
                "JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %s",
                (name,),
            )
            assert cur.fetchall() == [(name, True, False)]
    finally:
        with admin_connection.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_unreachable_metadata_database_is_a_clear_error() -> None:
    admin = {"user": "airflow", "password": "pw", "host": "127.0.0.1", "port": 1, "dbname": "airflow"}
    store = {**admin, "user": "incident_store", "dbname": "incident_store"}
    with pytest.raises(airflow_init.InitError, match="cannot reach the metadata database"):
        airflow_init.ensure_store_database(admin, store)


# -- users ---------------------------------------------------------------------------------------


def test_usernames_of_the_users_setting() -> None:
    assert airflow_init.usernames("admin:admin,oncall:user") == ["admin", "oncall"]
    assert airflow_init.usernames(" admin:admin , ") == ["admin"]


def test_passwords_are_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "config" / "simple_auth_manager_passwords.json.generated"
    assert airflow_init.ensure_passwords(path, ["admin", "oncall"]) == ["admin", "oncall"]
    first = json.loads(path.read_text())
    assert set(first) == {"admin", "oncall"} and all(len(p) >= 16 for p in first.values())
    assert path.stat().st_mode & 0o777 == 0o600
    # A later start keeps every password and only adds the new user's.
    assert airflow_init.ensure_passwords(path, ["admin", "oncall", "alice"]) == ["alice"]
    second = json.loads(path.read_text())
    assert {k: second[k] for k in first} == first and "alice" in second


def test_init_prepares_a_fresh_deployment(admin_connection, tmp_path: Path) -> None:
    """The whole airflow-init run, as in the container, on throw-away databases of the local server."""
    name = f"ir_deploy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin_connection.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}_meta"')
    secrets = new_env.fresh_secrets()
    passwords = tmp_path / "config" / "simple_auth_manager_passwords.json.generated"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW_UID": str(os.getuid()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}_meta",
        "AIRFLOW_CONN_INCIDENT_STORE": (
            f"postgres://{name}_store:{secrets['INCIDENT_STORE_PASSWORD']}@127.0.0.1:5432/{name}_store"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,oncall:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        **secrets,
    }
    script = [sys.executable, str(REPO / "docker" / "airflow_init.py")]
    try:
        first = subprocess.run(script, env=env, capture_output=True, text=True, timeout=240)
        assert first.returncode == 0, first.stderr[-2000:]
        assert f"role {name}_store created, database {name}_store created" in first.stdout
        # Compose runs it on every `up`: a second run changes nothing and still succeeds.
        second = subprocess.run(script, env=env, capture_output=True, text=True, timeout=240)
        assert second.returncode == 0, second.stderr[-2000:]
        assert f"database {name}_store present" in second.stdout and "(0 new password(s))" in second.stdout
        assert set(json.loads(passwords.read_text())) == {"admin", "oncall"}
        psycopg2 = pytest.importorskip("psycopg2")
        with psycopg2.connect(**{**PG, "dbname": f"{name}_meta"}) as meta, meta.cursor() as cur:
            cur.execute("SELECT count(*) FROM alembic_version")
            assert cur.fetchone() == (1,)
        # The product opens its store through the same connection, as the store's own role.
        from airflow.models.connection import Connection

        from incident_ops.hooks.incident_store import url_for
        from include.store import IncidentStore

        conn = Connection(conn_id="incident_store", uri=env["AIRFLOW_CONN_INCIDENT_STORE"])
        store = IncidentStore.from_url(url_for(conn))
        store.engine.dispose()
        with psycopg2.connect(**{**PG, "dbname": f"{name}_store"}) as db, db.cursor() as cur:
            cur.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchall() == [(f"{name}_store",)]
    finally:
        with admin_connection.cursor() as cur:
            for database in (f"{name}_meta", f"{name}_store"):
                cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cur.execute(f'DROP ROLE IF EXISTS "{name}_store"')
