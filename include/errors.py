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
