"""Who may acknowledge, escalate or resolve an incident, and which of those a given state allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.approval_policy import APPROVER_ROLES, MAX_REFUSED_ATTEMPTS, SLACK_PREFIX, ApproverPolicy
from include.errors import Refusal
from include.vocabulary import IncidentAction, IncidentState, RefusalCode

if TYPE_CHECKING:
    from include.store.incident_records import TimelineEntry

ACKNOWLEDGE, ESCALATE, RESOLVE = IncidentAction.ACKNOWLEDGE, IncidentAction.ESCALATE, IncidentAction.RESOLVE
LIFECYCLE_ACTIONS = tuple(IncidentAction)
FORBIDDEN, CONFLICT, TOO_MANY = RefusalCode.FORBIDDEN, RefusalCode.CONFLICT, RefusalCode.TOO_MANY
# Refused acknowledge, escalate and resolve attempts kept per person and incident, as votes per record.
MAX_REFUSED_ACTIONS = MAX_REFUSED_ATTEMPTS


class ResponderConfigError(ValueError):
    """The `incident_responders` Variable is malformed."""


@dataclass(frozen=True)
class ResponderPolicy:
    """Who may run an incident.

    :param responders: Allowed identities (Airflow usernames and `slack:<user id>`), already expanded
        through the approvers' `people`; None means "any Airflow user with the user role or above,
        and no Slack user".
    :param people: {identity: person}, from the approvers' `people`.
    """

    responders: frozenset[str] | None
    people: dict[str, str]

    @classmethod
    def from_config(cls, raw: Any, approvers: ApproverPolicy) -> ResponderPolicy:
        """Build the policy from the Variable's JSON value (None: fall back to the approvers' default)."""
        if raw is None:
            names = approvers.default
        elif isinstance(raw, list) and all(isinstance(v, str) and v for v in raw):
            names = tuple(raw)
        else:
            raise ResponderConfigError("incident_responders must be a JSON list of names")
        people = approvers.person_index()
        if names is None:
            return cls(responders=None, people=people)
        allowed = set(names)
        # A person named (or any of their identities) may act with every identity they have.
        for person, identities in approvers.people.items():
            if person in allowed or allowed.intersection(identities):
                allowed.update((person, *identities))
        return cls(responders=frozenset(allowed), people=people)

    def person_of(self, identity: str) -> str:
        """Return the person behind an identity (the identity itself when no person lists it)."""
        return self.people.get(identity, identity)


def responder_refusal(
    policy: ResponderPolicy, *, identity: str, channel: str, role: str | None
) -> Refusal | None:
    """Return why `identity` may not act on incidents, or None when it may.

    A `slack:` identity counts only when it came through Slack's verified requests.
    """
    is_slack = channel == "slack"
    if identity.startswith(SLACK_PREFIX) != is_slack:
        return Refusal(FORBIDDEN, "Slack identities act through Slack only")
    if policy.responders is None:
        if is_slack:
            return Refusal(
                FORBIDDEN, "no Slack responders are configured (set the incident_responders Variable)"
            )
        if (role or "").lower() not in APPROVER_ROLES:
            return Refusal(FORBIDDEN, "running incidents needs the user role or above")
        return None
    if identity not in policy.responders:
        return Refusal(FORBIDDEN, f"{identity} is not an allowed responder")
    return None


def state_refusal(action: str, *, state: IncidentState, escalated: bool) -> Refusal | None:
    """Return why `action` would change nothing for an incident in `state`, or None when it would."""
    if action not in LIFECYCLE_ACTIONS:
        raise ValueError(f"unknown incident action {action!r}")
    if state == IncidentState.RESOLVED:
        return Refusal(CONFLICT, "the incident is already resolved")
    if action == ACKNOWLEDGE and state == IncidentState.ACKNOWLEDGED:
        return Refusal(CONFLICT, "the incident is already acknowledged")
    if action == ESCALATE and escalated:
        return Refusal(CONFLICT, "the incident is already escalated")
    return None


def refused_attempts(policy: ResponderPolicy, refused: Iterable[TimelineEntry], identity: str) -> int:
    """Return how many of the kept refused-action entries (`refused`) are of the person behind `identity`."""
    person = policy.person_of(identity)
    return sum(1 for entry in refused if policy.person_of(str(entry.by)) == person)


def past_the_cap(refusal: Refusal) -> Refusal:
    """Return the refusal once the person's refused attempts on the incident reach the cap (not kept)."""
    return Refusal(TOO_MANY, f"{refusal.reason} (and too many refused attempts; this one is not kept)")
