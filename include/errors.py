"""The product's typed domain errors, which services raise and callers map (routes to HTTP statuses,
the DAG's retry policies to "fail at once").

This module imports nothing but the vocabulary: the DAG file's retry rules name these classes, and
Airflow imports each one when it parses the file, in every task process.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.vocabulary import RefusalCode


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


@dataclass(frozen=True)
class Refusal:
    """Why a vote does not count or an incident action is not taken.

    :param code: ``forbidden`` (this person may not act), ``conflict`` (the record or incident takes no
        such change now) or ``too_many`` (too many refused attempts already kept).
    :param reason: The words shown to the person and kept in the audit trail.
    :param expired: The approval's deadline has passed: the record is to be closed as expired.
    """

    code: RefusalCode
    reason: str
    expired: bool = False


class Refused(Exception):
    """A vote or an incident action that was refused; the caller maps `code` to its answer.

    :param refusal: Why, and how (its code).
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal

    @property
    def code(self) -> RefusalCode:
        """Return the refusal's code."""
        return self.refusal.code

    @property
    def reason(self) -> str:
        """Return the refusal's words."""
        return self.refusal.reason
