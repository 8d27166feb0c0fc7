"""The documents of the grouping engine (include/grouping.py): what it is asked and what it decides.

Pure and frozen: a decision is computed once from a snapshot and handed to the store as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from include.models import Enrichment
from include.runbooks import (
    DEFAULT_GROUPING_WINDOW_MINUTES,
    GROUPING_FIELDS,
    GroupingSpec,
    Runbook,
)
from include.topology import Topology
from include.vocabulary import AlertStatus, CauseKind, GroupingOutcome, GroupingRule, Severity, Source

DEFAULT_WINDOW = timedelta(minutes=DEFAULT_GROUPING_WINDOW_MINUTES)
# Fewer devices going offline together is as likely a coincidence as a silent gateway.
SILENT_GATEWAY_MIN_DEVICES = 3
# The failure classes a dead gateway causes in the devices behind it.
TOPOLOGY_RUNBOOKS = frozenset({"connectivity", "power"})


@dataclass(frozen=True)
class Facts:
    """What the inventory says of an alert's device, as the rules use it."""

    site: str | None = None
    gateway: str | None = None
    # Inventory values by field name (GROUPING_FIELDS), for runbook rules.
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # How many devices the topology puts behind `gateway`, for "27 of 30" (None when unknown).
    behind_gateway: int | None = None
    # How many devices the topology puts behind this device itself (a gateway's own alert).
    behind_device: int | None = None

    @classmethod
    def from_inventory(cls, enrichment: Enrichment, topology: Topology | None = None) -> Facts:
        """Return the facts of an enriched device; the topology adds how many share its gateway."""
        record = enrichment.model_dump()
        values = {name: str(record[name]) for name in GROUPING_FIELDS if record.get(name) is not None}
        gateway = enrichment.gateway
        if gateway is None and topology is not None:
            gateway = topology.gateway_of(enrichment.device_id)
        if gateway is not None:
            values["gateway"] = gateway
        behind = len(topology.behind(gateway)) if topology is not None and gateway is not None else None
        own = len(topology.behind(enrichment.device_id)) if topology is not None else None
        return cls(
            site=enrichment.site,
            gateway=gateway,
            values=MappingProxyType(values),
            behind_gateway=behind or None,
            behind_device=own or None,
        )


@dataclass(frozen=True)
class HeldAlert:
    """An alert already recorded: held by an open incident, or seen recently."""

    device_id: str
    error: str
    # The alert's deduplication key (include.models.Alert.incident_key).
    key: str
    runbook: str
    # When it was last seen firing.
    seen_at: datetime
    facts: Facts = field(default_factory=Facts)
    severity: Severity | None = None
    status: AlertStatus = AlertStatus.FIRING


@dataclass(frozen=True)
class NewAlert:
    """The alert being decided."""

    source: Source
    device_id: str
    error: str
    key: str
    runbook: str
    at: datetime
    facts: Facts = field(default_factory=Facts)
    severity: Severity | None = None
    status: AlertStatus = AlertStatus.FIRING

    def held(self) -> HeldAlert:
        """Return this alert as the store will hold it."""
        return HeldAlert(
            device_id=self.device_id,
            error=self.error,
            key=self.key,
            runbook=self.runbook,
            seen_at=self.at,
            facts=self.facts,
            severity=self.severity,
            status=self.status,
        )


@dataclass(frozen=True)
class SuspectedCause:
    """The device the rules blame, why, and which rule named it."""

    device_id: str
    reason: str
    kind: CauseKind

    def as_dict(self) -> dict[str, str]:
        """Return the incident document's `suspected_cause` (device_id and reason)."""
        return {"device_id": self.device_id, "reason": self.reason}


@dataclass(frozen=True)
class OpenIncident:
    """An open (or acknowledged) incident, with those of its alerts the store's lookups returned."""

    incident_id: str
    device_id: str
    runbook: str
    opened_at: datetime
    # The site and gateway of the incident's device: a merge across sites is refused on them.
    site: str | None = None
    gateway: str | None = None
    severity: Severity | None = None
    suspected_cause: SuspectedCause | None = None
    alerts: tuple[HeldAlert, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """What the store knows that could matter to one alert (see the lookups in include/grouping.py)."""

    incidents: tuple[OpenIncident, ...] = ()
    # Alerts within the window that no incident above holds (their incident was resolved by hand, say):
    # they still count towards a silent gateway.
    recent: tuple[HeldAlert, ...] = ()


@dataclass(frozen=True)
class GroupingPolicy:
    """The rules' settings: the window, the silent-gateway threshold, what a gateway outage looks like."""

    window: timedelta = DEFAULT_WINDOW
    silent_gateway_min: int = SILENT_GATEWAY_MIN_DEVICES
    symptom_runbooks: frozenset[str] = TOPOLOGY_RUNBOOKS
    symptom_errors: frozenset[str] = frozenset()
    runbook_rules: Mapping[str, GroupingSpec] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_runbooks(cls, books: Mapping[str, Runbook]) -> GroupingPolicy:
        """Return the policy of a runbook set: its grouping rules and its connectivity and power codes."""
        errors = frozenset(code for name in TOPOLOGY_RUNBOOKS if name in books for code in books[name].errors)
        rules = {name: book.grouping for name, book in books.items() if book.grouping is not None}
        return cls(symptom_errors=errors, runbook_rules=MappingProxyType(rules))

    def is_symptom(self, runbook: str, error: str) -> bool:
        """Say whether an alert looks like what a dead gateway does to the devices behind it."""
        return runbook in self.symptom_runbooks or error.strip().upper() in self.symptom_errors

    def window_for(self, runbook: str) -> timedelta:
        """Return the window of an alert's runbook rule, or the default."""
        spec = self.runbook_rules.get(runbook)
        return timedelta(minutes=spec.window_minutes) if spec is not None else self.window


@dataclass(frozen=True)
class LookupKeys:
    """What the store looks up for one alert (one indexed query per line, all in one transaction)."""

    # Open incidents holding an alert with this key.
    fingerprint: str
    # Open incidents whose device or suspected cause is this gateway.
    gateway: str | None
    # Alerts within [since, until] whose gateway is one of these (its gateway; itself, if a gateway),
    # or whose device is the alert's gateway.
    gateways: tuple[str, ...]
    # Alerts within [since, until] of this runbook with this group key (a runbook's grouping rule).
    runbook_group: tuple[str, str] | None
    since: datetime
    until: datetime


@dataclass(frozen=True)
class GroupingDecision:
    """What an alert does: open an incident, join one, or repeat one; why, and what the incident becomes."""

    outcome: GroupingOutcome
    # The incident joined (None when opened).
    incident_id: str | None
    # The incident's device after this alert: a gateway named as the cause takes it over.
    device_id: str
    rule: GroupingRule | None
    # The inventory fields of a runbook rule.
    by: tuple[str, ...]
    key: str | None
    window: timedelta
    reason: str
    # The incident's severity after this alert: the highest of its alerts', never lower than before.
    severity: Severity | None
    severity_raised: bool
    cause: SuspectedCause | None
    # The group keys the incident answers for after this alert (for the store's unique claims).
    group_keys: tuple[str, ...]

    @property
    def rule_name(self) -> str | None:
        """Return the rule as the timeline and the API spell it: fingerprint, gateway, runbook:site…"""
        if self.rule is GroupingRule.RUNBOOK:
            return f"{self.rule}:{'+'.join(self.by)}"
        return None if self.rule is None else str(self.rule)

    @property
    def pages_again(self) -> bool:
        """Say whether this alert raised a joined incident to critical (the page goes out once more)."""
        return self.incident_id is not None and self.severity_raised and self.severity is Severity.CRITICAL

    def timeline_detail(self) -> dict[str, Any]:
        """Return the `alert_grouped` timeline entry's detail (JSON-safe)."""
        return {
            "outcome": str(self.outcome),
            "rule": self.rule_name,
            "key": self.key,
            "window_seconds": int(self.window.total_seconds()),
            "reason": self.reason,
            "suspected_cause": None if self.cause is None else self.cause.as_dict(),
        }


# The rules without any runbook's own rule: pass GroupingPolicy.from_runbooks(load_runbooks()) for those.
DEFAULT_POLICY = GroupingPolicy()
