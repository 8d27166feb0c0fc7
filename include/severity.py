"""How severities compare: one ranking for the rules, the model's answer and the sender's hint."""

from __future__ import annotations

_RANK = {"info": 0, "warning": 1, "critical": 2}


def severity_rank(severity: str) -> int:
    """Return the rank of a severity (info < warning < critical)."""
    return _RANK[severity]


def highest(*severities: str | None) -> str:
    """Return the most severe of the given severities (None entries are ignored)."""
    present = [s for s in severities if s]
    if not present:
        raise ValueError("no severity given")
    return max(present, key=severity_rank)
