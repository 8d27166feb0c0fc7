"""An in-memory stand-in for the incident store, to run storms through the grouping rules in tests.

It keeps what a store would keep and answers every lookup with everything it holds (a superset of
what the real lookups return), applying each decision the way phase two's store will.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from include.grouping import decide
from include.grouping_model import (
    DEFAULT_POLICY,
    Facts,
    GroupingDecision,
    GroupingPolicy,
    NewAlert,
    OpenIncident,
    Snapshot,
)
from include.models import Enrichment
from include.runbooks import match_runbook
from include.topology import Topology
from include.vocabulary import GroupingOutcome, Severity, Source

T0 = datetime(2025, 3, 1, 8, 0, 0)


def facts(topology: Topology, device_id: str) -> Facts:
    """Return the facts the intake would compute from the inventory."""
    site = topology.site_of(device_id)
    enrichment = Enrichment(device_id=device_id, known=site is not None, site=site)
    return Facts.from_inventory(enrichment, topology)


def alert(
    topology: Topology,
    device_id: str,
    error: str = "DEVICE_OFFLINE",
    *,
    at: datetime = T0,
    seconds: float = 0,
    severity: Severity | None = None,
    key: str | None = None,
) -> NewAlert:
    """Return a firing alert as the intake would hand it to the rules."""
    return NewAlert(
        source=Source.ALERTMANAGER,
        device_id=device_id,
        error=error,
        key=key or f"{device_id}:{error}",
        runbook=match_runbook(error).name,
        at=at + timedelta(seconds=seconds),
        facts=facts(topology, device_id),
        severity=severity,
    )


@dataclass
class Store:
    """Open incidents in memory; `take` decides an alert and applies the decision."""

    policy: GroupingPolicy = DEFAULT_POLICY
    incidents: dict[str, OpenIncident] = field(default_factory=dict)
    decisions: list[tuple[NewAlert, GroupingDecision]] = field(default_factory=list)
    severities: dict[str, list[Severity | None]] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        return Snapshot(incidents=tuple(self.incidents.values()))

    def take(self, new: NewAlert) -> GroupingDecision:
        decision = decide(new, self.snapshot(), self.policy)
        self.decisions.append((new, decision))
        if decision.outcome is GroupingOutcome.OPENED:
            incident_id = f"I{len(self.incidents) + 1}"
            moved = decision.device_id != new.device_id
            self.incidents[incident_id] = OpenIncident(
                incident_id=incident_id,
                device_id=decision.device_id,
                runbook=new.runbook,
                opened_at=new.at,
                site=new.facts.site,
                gateway=None if moved else new.facts.gateway,
                severity=decision.severity,
                suspected_cause=decision.cause,
                alerts=(new.held(),),
            )
        else:
            assert decision.incident_id is not None
            incident_id = decision.incident_id
            old = self.incidents[incident_id]
            moved = decision.device_id != old.device_id
            held = old.alerts
            if decision.outcome is GroupingOutcome.GROUPED:
                held = (*held, new.held())
            self.incidents[incident_id] = replace(
                old,
                device_id=decision.device_id,
                gateway=None if moved else old.gateway,
                severity=decision.severity,
                suspected_cause=decision.cause or old.suspected_cause,
                alerts=held,
            )
        self.severities.setdefault(incident_id, []).append(self.incidents[incident_id].severity)
        return decision

    def holding(self, device_id: str) -> list[OpenIncident]:
        return [i for i in self.incidents.values() if any(a.device_id == device_id for a in i.alerts)]
