"""Who must approve what: when approval is needed, who may vote, and when a record is decided."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from include.models import Alert, Analysis
from include.runbooks import Runbook

DEFAULT_CONFIDENCE_THRESHOLD = 0.6
SLACK_PREFIX = "slack:"
# With no approvers configured, web/API voters need at least this Airflow role.
APPROVER_ROLES = ("user", "op", "admin")


class ApproverConfigError(ValueError):
    """The `incident_approvers` configuration is malformed."""


def approval_reasons(
    alert: Alert, analysis: Analysis, runbook: Runbook, *, threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
) -> list[str]:
    """Return why this incident needs a human's approval; empty when the fix may run at once."""
    reasons = []
    if runbook.action(analysis.recommended_action).risky:
        reasons.append(f"action {analysis.recommended_action} is high risk")
    if analysis.confidence < threshold:
        reasons.append(f"confidence {analysis.confidence:.2f} is below {threshold:.2f}")
    if alert.require_approval:
        reasons.append("the run asked for approval")
    return reasons


@dataclass(frozen=True)
class ApproverPolicy:
    """Approvers per action, from the `incident_approvers` Variable.

    :param default: Approvers for any action without its own list; None means "any Airflow user
        with the user role or above, and no Slack user".
    :param actions: Approver lists per runbook action.
    :param forbid_self_approval: Refuse votes from whoever requested the approval.
    """

    default: tuple[str, ...] | None = None
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    forbid_self_approval: bool = False

    @classmethod
    def from_config(cls, raw: Any) -> ApproverPolicy:
        """Build the policy from the Variable's JSON value (None when the Variable is absent)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ApproverConfigError("incident_approvers must be a JSON object")
        unknown = set(raw) - {"default", "actions", "forbid_self_approval"}
        if unknown:
            raise ApproverConfigError(f"incident_approvers has unknown keys: {', '.join(sorted(unknown))}")

        def names(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ApproverConfigError(f"incident_approvers.{where} must be a list of names")
            return tuple(value)

        default = names(raw["default"], "default") if "default" in raw else None
        actions = raw.get("actions") or {}
        if not isinstance(actions, dict):
            raise ApproverConfigError("incident_approvers.actions must be an object")
        forbid = raw.get("forbid_self_approval", False)
        if not isinstance(forbid, bool):
            raise ApproverConfigError("incident_approvers.forbid_self_approval must be true or false")
        return cls(
            default=default,
            actions={a: names(v, f"actions.{a}") for a, v in actions.items()},
            forbid_self_approval=forbid,
        )

    def approvers_for(self, action: str) -> list[str] | None:
        """Return the approvers for `action`, or None for "any Airflow user with the user role"."""
        chosen = self.actions.get(action, self.default)
        return None if chosen is None else list(chosen)


def refusal(
    *,
    identity: str,
    channel: str,
    role: str | None,
    approvers: list[str] | None,
    requested_by: str | None,
    forbid_self_approval: bool,
) -> str | None:
    """Return why `identity` may not vote on a record, or None when it may.

    `identity` is an Airflow username, or `slack:<user id>` for Slack voters.
    """
    if forbid_self_approval and requested_by and identity == requested_by:
        return "requesters may not approve their own request"
    if approvers is None:
        if channel == "slack" or identity.startswith(SLACK_PREFIX):
            return "no Slack approvers are configured (set the incident_approvers Variable)"
        if (role or "").lower() not in APPROVER_ROLES:
            return "approving needs the user role or above"
        return None
    if identity not in approvers:
        return f"{identity} is not an allowed approver for this action"
    return None
