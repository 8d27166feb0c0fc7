"""Runtime settings read from Airflow Variables and the environment (never at DAG parse time)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from include.errors import ConfigError
from include.names import APPROVERS_VARIABLE, CHANNELS_VARIABLE, DEADLINE_OVERRIDE_ENV, RESPONDERS_VARIABLE

if TYPE_CHECKING:
    from include.approval_policy import ApproverPolicy
    from include.responders import ResponderPolicy

DEFAULT_CHANNEL = "#incidents"
# What a message is for, as the keys of the `incident_slack_channels` Variable name them; a purpose
# without its own channel posts to `default`.
CHANNEL_PURPOSES = ("oncall", "secondary", "approvals", "tickets", "default")


def _variable_json(key: str) -> Any:
    from airflow.sdk import Variable

    raw = Variable.get(key, default=None)
    if raw is None or isinstance(raw, (dict, list)):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Variable {key} is not valid JSON: {exc}") from exc


def slack_channels() -> dict[str, str]:
    """Return the channel map, e.g. {"oncall": "#oncall", "default": "#incidents"}."""
    value = _variable_json(CHANNELS_VARIABLE) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"Variable {CHANNELS_VARIABLE} must be a JSON object of channel names")
    return value


def channel_for(purpose: str) -> str:
    """Return the channel for `purpose` (one of CHANNEL_PURPOSES), else the default channel."""
    if purpose not in CHANNEL_PURPOSES:
        raise ValueError(f"unknown message purpose {purpose!r}")
    channels = slack_channels()
    return channels.get(purpose) or channels.get("default") or DEFAULT_CHANNEL


def approver_policy() -> ApproverPolicy:
    """Return who may approve, from the `incident_approvers` Variable."""
    from include.approval_policy import ApproverPolicy

    return ApproverPolicy.from_config(_variable_json(APPROVERS_VARIABLE))


def responder_policy() -> ResponderPolicy:
    """Return who may acknowledge, escalate, resolve: `incident_responders`, else the approvers' default."""
    from include.responders import ResponderPolicy

    return ResponderPolicy.from_config(_variable_json(RESPONDERS_VARIABLE), approver_policy())


def deadline_override_seconds() -> float | None:
    """Return the operator's deadline override in seconds, if set."""
    raw = os.environ.get(DEADLINE_OVERRIDE_ENV)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{DEADLINE_OVERRIDE_ENV} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{DEADLINE_OVERRIDE_ENV} must be positive")
    return value


def airflow_base_url() -> str:
    """Return the public address of the Airflow UI, for links in messages."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
