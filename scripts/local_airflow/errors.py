"""The errors raised while preparing, starting or driving the embedded Airflow."""

from __future__ import annotations

from typing import Any


class LocalAirflowError(RuntimeError):
    """Raised when the local Airflow cannot be prepared, started or driven."""


class ApiError(LocalAirflowError):
    """Raised when the Airflow REST API answers with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} answered {status}: {body!r}"[:2000])
