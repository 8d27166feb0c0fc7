"""The keys every Airflow process shares, and the SimpleAuthManager passwords, created once per home."""

from __future__ import annotations

import base64
import configparser
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from .environment import SIMPLE_AUTH_MANAGER
from .files import read_json, write_private

SECRETS_FILE_NAME = "local_airflow_secrets.json"
PASSWORD_ALPHABET = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"


def home_secrets(home: Path, airflow_cfg: Path) -> dict[str, str]:
    """Return the JWT secret, API secret key and Fernet key of this home, created once."""
    path = home / SECRETS_FILE_NAME
    if path.exists():
        return read_json(path)
    # Airflow signs JWTs with HS512, and PyJWT warns about HMAC keys shorter than 64 bytes.
    keys = {"jwt_secret": secrets.token_urlsafe(64), "api_secret_key": secrets.token_urlsafe(64)}
    # A home made by plain `airflow` has a Fernet key in airflow.cfg: keep it so the connections
    # it encrypted stay readable. Otherwise a new one: 32 random bytes in URL-safe base64.
    keys["fernet_key"] = fernet_key_from_airflow_cfg(airflow_cfg) or (
        base64.urlsafe_b64encode(os.urandom(32)).decode()
    )
    write_private(path, json.dumps(keys, indent=2) + "\n")
    return keys


def fernet_key_from_airflow_cfg(path: Path) -> str:
    """Return the Fernet key an existing airflow.cfg holds, or ''."""
    if not path.is_file():
        return ""
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path)
    except configparser.Error:
        return ""
    return parser.get("core", "fernet_key", fallback="").strip()


def read_passwords(passwords_file: Path) -> dict[str, str]:
    """Return the SimpleAuthManager passwords by username."""
    return read_json(passwords_file)


def ensure_passwords(env: Mapping[str, str], passwords_file: Path) -> None:
    """Give every configured user a random password, keeping existing ones."""
    if env.get("AIRFLOW__CORE__AUTH_MANAGER") != SIMPLE_AUTH_MANAGER:
        return
    users = usernames(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ""))
    current = read_passwords(passwords_file) if passwords_file.exists() else {}
    missing = [user for user in users if user not in current]
    if not missing:
        return
    for user in missing:
        current[user] = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(16))
    passwords_file.parent.mkdir(parents=True, exist_ok=True)
    # Same format SimpleAuthManager writes: one JSON object {"username": "password"}.
    write_private(passwords_file, json.dumps(current) + "\n")


def usernames(users: str) -> list[str]:
    """Return the usernames of a `name:role[:teams],...` setting."""
    return [entry.split(":")[0].strip() for entry in users.split(",") if entry.strip()]
