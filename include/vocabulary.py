"""The product's vocabulary: every state, severity and kind, each an enum spelled once here.

A state or severity word written as a bare string anywhere else is a bug: compare with these members,
store their values, and map outside systems' wire values (PagerDuty severities, Slack emoji) from them.
The values are what the store, XCom, the JSON API and the metrics carry, so they never change.

Pure and cheap: the DAG file imports it for the trigger form's enums.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad an alert or incident is; members compare by rank (info < warning < critical).

    A plain string on the other side of a comparison is read as a severity first, so
    ``Severity.WARNING < "critical"`` holds and ``Severity.WARNING < "bogus"`` raises ValueError.
    """

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Return 0 for info, 1 for warning, 2 for critical."""
        return _SEVERITY_RANK[self]

    @classmethod
    def highest(cls, *severities: str | None) -> Severity:
        """Return the most severe of the given severities (None entries are ignored)."""
        present = [cls(s) for s in severities if s]
        if not present:
            raise ValueError("no severity given")
        return max(present)

    def __lt__(self, other: Any) -> bool:
        return self.rank < _rank_of(other)

    def __le__(self, other: Any) -> bool:
        return self.rank <= _rank_of(other)

    def __gt__(self, other: Any) -> bool:
        return self.rank > _rank_of(other)

    def __ge__(self, other: Any) -> bool:
        return self.rank >= _rank_of(other)


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def _rank_of(other: Any) -> int:
    if isinstance(other, str):
        return _SEVERITY_RANK[Severity(other)]
    raise TypeError(f"cannot compare a severity with {type(other).__name__}")


class IncidentState(StrEnum):
    """Where an incident stands: open, acknowledged by a responder, resolved (for good)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"

    @property
    def active(self) -> bool:
        """Say whether the incident is still being handled (repeats of its alert are duplicates)."""
        return self is not IncidentState.RESOLVED


ACTIVE_INCIDENT_STATES = tuple(state for state in IncidentState if state.active)


class ApprovalState(StrEnum):
    """Where an approval record stands: pending, then exactly one decided state, never changed again."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def decided(self) -> bool:
        """Say whether the record has left `pending`."""
        return self is not ApprovalState.PENDING


class WaitState(StrEnum):
    """Why the approval trigger resumed its sensor instead of ending the task."""

    # The deadline passed: the sensor records the expiry itself.
    EXPIRED = "expired"
    REMINDER = "reminder"
    ERROR = "error"


class Decision(StrEnum):
    """What a vote on an approval record says."""

    APPROVE = "approve"
    REJECT = "reject"


class AlertStatus(StrEnum):
    """What a sender says of an alert: it fires, it cleared, or (PagerDuty) someone acknowledged it."""

    FIRING = "firing"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


class OutboxState(StrEnum):
    """Where a message in the incident store's outbox stands: kept, then sent once Slack took it."""

    PENDING = "pending"
    SENT = "sent"


class ActionState(StrEnum):
    """Where an action on a device stands: claimed and started, then done or failed."""

    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    # Containment the runbook does not have: nothing was sent.
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """How an incident ended, from the branches its run took or from who closed it."""

    FIXED = "fixed"
    ESCALATED = "escalated"
    ESCALATED_REJECTED = "escalated_rejected"
    ESCALATED_EXPIRED = "escalated_expired"
    CANCELLED = "cancelled"
    CONTAINED = "contained"
    TICKETED = "ticketed"
    LOGGED = "logged"
    RESOLVED_UPSTREAM = "resolved_upstream"
    RESOLVED_BY_HAND = "resolved_by_hand"

    @classmethod
    def escalated_after(cls, approval_state: ApprovalState | None) -> Outcome:
        """Return the outcome of an escalation after an approval ended in `approval_state`."""
        if approval_state is None:
            return cls.ESCALATED
        return cls(f"{cls.ESCALATED}_{approval_state}")


class IncidentAction(StrEnum):
    """What a responder may do to an incident (the page's buttons, `/incident`, the incident API)."""

    ACKNOWLEDGE = "acknowledge"
    ESCALATE = "escalate"
    RESOLVE = "resolve"


class RefusalCode(StrEnum):
    """Why a vote or an incident action was refused, as the API maps it to a status code."""

    # This person may not act (403).
    FORBIDDEN = "forbidden"
    # The record or incident takes no such change now: decided, expired, resolved, a second vote (409).
    CONFLICT = "conflict"
    # Too many refused attempts by one person on one record: not kept any more (429).
    TOO_MANY = "too_many"


class TimelineKind(StrEnum):
    """The kinds of an incident's timeline entries."""

    OPENED = "opened"
    DECLARED = "declared"
    DUPLICATE = "duplicate"
    IGNORED_CONF_KEYS = "ignored_conf_keys"
    ALERT_RESOLVED = "alert_resolved"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"
    ENRICHED = "enriched"
    LLM_CALL = "llm_call"
    DIAGNOSED = "diagnosed"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    ACTION_REFUSED = "action_refused"
    APPROVAL_POLICY = "approval_policy"
    APPROVAL_REQUESTED = "approval_requested"
    VOTE = "vote"
    VOTE_REFUSED = "vote_refused"
    CONTAINMENT_NONE = "containment_none"
    TICKET_OPENED = "ticket_opened"
    LOGGED = "logged"
    MESSAGE_UNDELIVERED = "message_undelivered"
    PAGERDUTY_EVENT = "pagerduty_event"
    JIRA_ISSUE_OPENED = "jira_issue_opened"
    JIRA_COMMENTED = "jira_commented"
    TASK_FAILED = "task_failed"
    # execute_fix found no approved record matching what it would run, and acted on nothing.
    FIX_REFUSED = "fix_refused"
    # An alert joined an open incident (with the rule, the key and the window that matched).
    ALERT_GROUPED = "alert_grouped"
    # The rules named the incident's cause (a gateway that alerted after its devices, or a silent one).
    CAUSE_NAMED = "cause_named"
    # An alert fired again soon after its incident was resolved: the same incident is open again.
    REOPENED = "reopened"

    @staticmethod
    def approval(state: ApprovalState) -> str:
        """Return the kind of the entry that records an approval record's decision."""
        return f"approval_{state}"

    @staticmethod
    def action(state: ActionState) -> str:
        """Return the kind of the entry that records how an action ended."""
        return f"action_{state}"

    @staticmethod
    def failed(integration: str) -> str:
        """Return the kind of the entry that records an outside system we could not tell."""
        return f"{integration}_failed"


class GroupingOutcome(StrEnum):
    """What an alert did when it arrived: opened an incident, joined one, or repeated one it is in."""

    OPENED = "opened"
    GROUPED = "grouped"
    DEDUPLICATED = "deduplicated"


class GroupingRule(StrEnum):
    """Which rule made an alert join an open incident (see include/grouping.py)."""

    # The same alert again: its fingerprint (incident key) is already held.
    FINGERPRINT = "fingerprint"
    # Through its gateway: the gateway is the incident's device or suspected cause, or the alert is
    # that gateway's own, after its devices.
    GATEWAY = "gateway"
    # Behind the same gateway as alerts already grouped within the window.
    SHARED_GATEWAY = "shared_gateway"
    # A runbook's `grouping:` section: the same runbook and equal inventory values within the window.
    RUNBOOK = "runbook"


class CauseKind(StrEnum):
    """How the rules named an incident's cause."""

    # The gateway alerted after devices behind it: the incident moves to the gateway.
    GATEWAY_ALERTED = "gateway_alerted"
    # Enough devices behind one gateway went offline while the gateway said nothing.
    SILENT_GATEWAY = "silent_gateway"


class Source(StrEnum):
    """Where an alert came from (the trigger conf's `source`)."""

    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    IOT = "iot"
    UI = "ui"
    API = "api"
    SLACK = "slack"
    GENERIC = "generic"


class Channel(StrEnum):
    """Where a person acted from: a Slack click or command, the record page, or the JSON API."""

    SLACK = "slack"
    WEB = "web"
    API = "api"
