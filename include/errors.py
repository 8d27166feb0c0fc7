"""The product's typed domain errors, which services raise and callers map (routes to HTTP statuses,
the DAG's retry policies to "fail at once").

This module imports nothing: the DAG file's retry rules name these classes, and Airflow imports each
one when it parses the file, in every task process.
"""

from __future__ import annotations


class InvalidDocument(ValueError):
    """A document between two steps is missing or does not match its model."""


class RunbookError(ValueError):
    """A runbook file is malformed or refers to an action it does not define."""


class ConfigError(ValueError):
    """A Variable holds a value of the wrong shape."""


class IntakeRefused(Exception):
    """The intake did not take an alert; the caller decides what to answer (a route maps it to a status).

    :param detail: What is wrong, in words the sender's operator can act on.
    :param field: The offending field of the alert or body, if one.
    """

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class AlertRefused(IntakeRefused):
    """The alert itself is wrong (the DAG's Params refused it): sending it again will not help."""


class IntakeUnavailable(IntakeRefused):
    """Something the intake needs is out of reach or not ready (the incident store, Airflow's database,
    the DAG not parsed yet): a retry may get past it."""
