"""Who must approve what: when approval is needed, who may vote, and which votes count."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.errors import Refusal
from include.models import Alert, Analysis
from include.runbooks import Runbook
from include.store.records import Approval
from include.vocabulary import RefusalCode, Severity

DEFAULT_CONFIDENCE_THRESHOLD = 0.6
SLACK_PREFIX = "slack:"
# With no approvers configured, web/API voters need at least this Airflow role.
APPROVER_ROLES = ("user", "op", "admin")
# Refused attempts kept per person and record; later ones are refused without being stored.
MAX_REFUSED_ATTEMPTS = 5
FORBIDDEN, CONFLICT, TOO_MANY = RefusalCode.FORBIDDEN, RefusalCode.CONFLICT, RefusalCode.TOO_MANY


class ApproverConfigError(ValueError):
    """The `incident_approvers` configuration is malformed."""


@dataclass(frozen=True)
class Caution:
    """What the policy requires of an incident: its lowest severity and why a human must approve.

    :param severity: The severity the run must be handled at (never below the rules' or the hint's).
    :param reasons: Why a human must approve the recommended action; empty when it may run at once.
    """

    severity: Severity
    reasons: list[str]

    @property
    def needs_approval(self) -> bool:
        """Say whether a human must approve before the fix runs."""
        return bool(self.reasons)


def caution(
    alert: Alert,
    *,
    rules: Analysis,
    proposed: Analysis,
    runbook: Runbook,
    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
) -> Caution:
    """Return the severity and the approvals an incident needs: a model may only add caution.

    `rules` is the built-in rules' analysis of the alert; `proposed` is the analysis the run would
    act on (the model's, or the rules' own). The rules' severity and the sender's hint are a floor;
    whatever approval the rules' own analysis needs is needed; an action the model chose instead of
    the rules' choice needs a human; and a confidence, the model's included, never lifts any of it.
    """
    severity = Severity.highest(rules.severity, proposed.severity, alert.severity)
    reasons = []
    action = runbook.action(proposed.recommended_action)
    if action.risky:
        reasons.append(f"action {action.name} is high risk")
    # The rules' own action, when the model chose another, is covered by the next reason: any change
    # of action by the model is a human's decision.
    if proposed.recommended_action != rules.recommended_action:
        reasons.append(
            f"the model proposed {proposed.recommended_action} instead of {rules.recommended_action}"
        )
    confidence = min(proposed.confidence, rules.confidence)
    if confidence < threshold:
        reasons.append(f"confidence {confidence:.2f} is below {threshold:.2f}")
    if alert.require_approval:
        reasons.append("the run asked for approval")
    return Caution(severity=severity, reasons=reasons)


@dataclass(frozen=True)
class ApproverPolicy:
    """Approvers per action, from the `incident_approvers` Variable.

    :param default: Approvers for any action without its own list; None means "any Airflow user
        with the user role or above, and no Slack user".
    :param actions: Approver lists per runbook action.
    :param forbid_self_approval: Refuse votes from whoever requested the approval.
    :param people: Each person's identities (Airflow usernames, `slack:<user id>`): quorum counts
        people, so one person approving through Slack and the web counts once.
    """

    default: tuple[str, ...] | None = None
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    forbid_self_approval: bool = False
    people: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, raw: Any) -> ApproverPolicy:
        """Build the policy from the Variable's JSON value (None when the Variable is absent)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ApproverConfigError("incident_approvers must be a JSON object")
        unknown = set(raw) - {"default", "actions", "forbid_self_approval", "people"}
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
        people = raw.get("people") or {}
        if not isinstance(people, dict):
            raise ApproverConfigError("incident_approvers.people must be an object of identity lists")
        policy = cls(
            default=default,
            actions={a: names(v, f"actions.{a}") for a, v in actions.items()},
            forbid_self_approval=forbid,
            people={p: names(v, f"people.{p}") for p, v in people.items()},
        )
        policy.person_index()  # refuse an identity listed for two people now, not at vote time
        return policy

    def approvers_for(self, action: str) -> list[str] | None:
        """Return the approvers for `action`, or None for "any Airflow user with the user role"."""
        chosen = self.actions.get(action, self.default)
        if chosen is None:
            return None
        # A person named in a list may approve with any of their identities.
        allowed = list(chosen)
        for person, identities in self.people.items():
            if person in chosen or any(i in chosen for i in identities):
                allowed += [i for i in (person, *identities) if i not in allowed]
        return allowed

    def person_index(self) -> dict[str, str]:
        """Return {identity: person} for every identity the people section lists."""
        index: dict[str, str] = {}
        for person, identities in self.people.items():
            for identity in identities:
                if index.get(identity, person) != person:
                    raise ApproverConfigError(
                        f"incident_approvers.people lists {identity} for both {index[identity]} and {person}"
                    )
                index[identity] = person
        return index


def refusal(
    *,
    identity: str,
    channel: str,
    role: str | None,
    approvers: list[str] | None,
    requested_by: str | None,
    forbid_self_approval: bool,
    people: Mapping[str, str] | None = None,
) -> str | None:
    """Return why `identity` may not vote on a record at all, or None when it may.

    `identity` is an Airflow username, or `slack:<user id>` for Slack voters; a `slack:` identity
    counts only when it came through Slack's verified requests (`channel == "slack"`).
    """
    is_slack = channel == "slack"
    if identity.startswith(SLACK_PREFIX) != is_slack:
        return "Slack identities vote through Slack only"
    person = (people or {}).get(identity, identity)
    if forbid_self_approval and requested_by and person == (people or {}).get(requested_by, requested_by):
        return "requesters may not approve their own request"
    if approvers is None:
        if is_slack:
            return "no Slack approvers are configured (set the incident_approvers Variable)"
        if (role or "").lower() not in APPROVER_ROLES:
            return "approving needs the user role or above"
        return None
    if identity not in approvers:
        return f"{identity} is not an allowed approver for this action"
    return None


def vote_refusal(
    record: Approval, *, identity: str, channel: str, role: str | None, now: datetime
) -> Refusal | None:
    """Return why a vote on `record` does not count, or None: the one rule for every channel."""
    if record.decided:
        return Refusal(CONFLICT, f"the request was already {record.state}")
    if now >= record.expires_at:
        return Refusal(CONFLICT, "the request has expired", expired=True)
    why = refusal(
        identity=identity,
        channel=channel,
        role=role,
        approvers=record.approvers,
        requested_by=record.requested_by,
        forbid_self_approval=record.forbid_self_approval,
        people=record.people,
    )
    if why is None and record.person_of(identity) in record.voters:
        who = record.person_of(identity)
        why, code = f"{who} has already voted", CONFLICT
    else:
        code = FORBIDDEN
    if why is None:
        return None
    if record.refused_attempts(identity) >= MAX_REFUSED_ATTEMPTS:
        return Refusal(TOO_MANY, f"{why} (and too many refused attempts; this one is not kept)")
    return Refusal(code, why)
