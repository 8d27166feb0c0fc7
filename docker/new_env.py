"""Write a `.env` for docker-compose.yaml with fresh secrets: `python3 docker/new_env.py`.

It never overwrites an existing file: a new Fernet key would make every stored connection password
unreadable, and a new POSTGRES_PASSWORD no longer matches the one the database volume was created with.
Standard library only, so it runs with any Python 3 on the host.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / ".env"


def fresh_secrets() -> dict[str, str]:
    """Return a new value for every secret docker-compose.yaml requires."""
    return {
        # Shared by every Airflow container: the scheduler signs task tokens, the API server checks them.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
        # Encrypts connection passwords and variables in the metadata database.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        # Hex: the passwords go into connection URLs unescaped.
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "INCIDENT_STORE_PASSWORD": secrets.token_hex(24),
    }


def render(values: dict[str, str]) -> str:
    lines = ["# Written by docker/new_env.py. Keep it private; see .env.example for every setting."]
    lines += [f"{name}={value}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def write_env(path: Path) -> dict[str, str]:
    """Create `path` readable by its owner only, holding fresh secrets; refuse if it exists."""
    values = fresh_secrets()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render(values))
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="default: .env beside the compose file"
    )
    args = parser.parse_args(argv)
    try:
        write_env(args.output)
    except FileExistsError:
        print(
            f"{args.output} exists; not overwritten (its keys encrypt stored data). "
            "Edit it by hand, or delete it first for a brand-new deployment.",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {args.output} with fresh secrets; add optional settings from .env.example to it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
