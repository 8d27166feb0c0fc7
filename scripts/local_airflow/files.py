"""Read and write the small files of an Airflow home: JSON, private files, log tails."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import LocalAirflowError


def read_json(path: Path) -> Any:
    """Read a JSON file we or Airflow wrote, with a clear error if it was damaged."""
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise LocalAirflowError(f"{path} is not valid JSON ({err}); fix or delete it") from err


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


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
