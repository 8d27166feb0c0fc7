"""Which incident an alert belongs to: the grouping rules, pure (no I/O, no Airflow, no SQL).

An alert joins an open incident rather than opening one when, in this order:

1. ``fingerprint``: its key is already held (today's deduplication): ``deduplicated``;
2. ``gateway``: it is the gateway of symptom alerts an open incident holds within the window (the
   gateway alerted after its devices: the incident moves to the gateway), or its gateway is the
   device or suspected cause of an open incident;
3. ``shared_gateway``: it connects through the same gateway as symptom alerts an incident holds
   within the window;
4. ``runbook:<by…>``: its runbook has a ``grouping`` rule and an incident holds an alert of that
   runbook with equal inventory values within the window (a site's power loss).

Topology rules only join symptoms (connectivity or power, by runbook or error code): an overheating
pump behind a failed gateway is its own incident. No rule but the fingerprint merges across sites,
and the topology rules only ever join devices behind one gateway. The rules decide; no model does.

A silent gateway: once ``silent_gateway_min`` devices behind one gateway are offline within the
window, the incident moves to the gateway with a ``suspected_cause``.

What the store looks up (``lookup_keys`` returns them), in one transaction under the lock or unique
key that makes the decision hold under concurrent senders:

- by fingerprint: open incidents holding an alert with the alert's key (the intake's unique key);
- by gateway: open incidents whose device or suspected cause is the alert's gateway (an index on the
  incident's device and on its cause's device);
- by gateway within the window: alerts whose gateway is the alert's gateway or the alert's own
  device, or whose device is the alert's gateway, seen in ``[since, until]`` (an index on
  ``(gateway, last_seen)``), with the open incidents holding them;
- by runbook group within the window: alerts of the same runbook with the same ``group_key`` in
  ``[since, until]`` (an index on ``(runbook, group_key, last_seen)``).

Each incident answers for the ``group_keys`` of its decision; a store that keeps them unique among
open incidents turns two concurrent openers of one outage into one opener and one that decides again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from include.grouping_model import (
    DEFAULT_POLICY,
    GroupingDecision,
    GroupingPolicy,
    HeldAlert,
    LookupKeys,
    NewAlert,
    OpenIncident,
    Snapshot,
    SuspectedCause,
)
from include.vocabulary import AlertStatus, CauseKind, GroupingOutcome, GroupingRule, Severity

# The same alert again is a repeat, not a new member of the incident.
_OUTCOME_OF = {GroupingRule.FINGERPRINT: GroupingOutcome.DEDUPLICATED}


@dataclass(frozen=True)
class _Context:
    alert: NewAlert
    incidents: list[OpenIncident]
    snapshot: Snapshot
    policy: GroupingPolicy
    window: timedelta


@dataclass(frozen=True)
class _Match:
    incident: OpenIncident
    rule: GroupingRule
    key: str
    reason: str
    by: tuple[str, ...] = ()
    cause: SuspectedCause | None = None


def decide(alert: NewAlert, snapshot: Snapshot, policy: GroupingPolicy = DEFAULT_POLICY) -> GroupingDecision:
    """Decide whether a firing alert opens an incident, joins one, or repeats one it is already in.

    A resolved or acknowledged notice is never grouped: it clears (or notes) the alert its key names.
    """
    if alert.status is not AlertStatus.FIRING:
        raise ValueError(f"only firing alerts are grouped, not {alert.status} ones")
    window = policy.window_for(alert.runbook)
    incidents = sorted(snapshot.incidents, key=lambda i: (i.opened_at, i.incident_id))
    context = _Context(alert, incidents, snapshot, policy, window)
    match = next(filter(None, (rule(context) for rule in _RULES)), None)
    if match is None:
        cause = _silent_gateway(alert, None, snapshot, policy, window)
        return GroupingDecision(
            outcome=GroupingOutcome.OPENED,
            incident_id=None,
            device_id=alert.device_id if cause is None else cause.device_id,
            rule=None,
            by=(),
            key=None,
            window=window,
            reason=_why_opened(alert, policy, window, cause),
            severity=alert.severity,
            severity_raised=False,
            cause=cause,
            group_keys=group_keys(alert, policy),
        )
    incident = match.incident
    cause = match.cause or _silent_gateway(alert, incident, snapshot, policy, window)
    severity = _highest(incident.severity, alert.severity)
    raised = severity is not None and (incident.severity is None or severity > incident.severity)
    return GroupingDecision(
        outcome=_OUTCOME_OF.get(match.rule, GroupingOutcome.GROUPED),
        incident_id=incident.incident_id,
        device_id=incident.device_id if cause is None else cause.device_id,
        rule=match.rule,
        by=match.by,
        key=match.key,
        window=window,
        reason=match.reason if cause is None else f"{match.reason}; {cause.reason}",
        severity=severity,
        severity_raised=raised,
        cause=cause,
        group_keys=group_keys(alert, policy),
    )


def lookup_keys(alert: NewAlert, policy: GroupingPolicy = DEFAULT_POLICY) -> LookupKeys:
    """Return what the store must look up to build the snapshot for `alert`."""
    window = policy.window_for(alert.runbook)
    gateways = tuple(dict.fromkeys(g for g in (alert.facts.gateway, alert.device_id) if g))
    spec = policy.runbook_rules.get(alert.runbook)
    value = None if spec is None else group_key(alert.runbook, spec.by, alert.facts.values)
    return LookupKeys(
        fingerprint=alert.key,
        gateway=alert.facts.gateway,
        gateways=gateways,
        runbook_group=None if value is None else (alert.runbook, value),
        since=alert.at - window,
        until=alert.at + window,
    )


def group_key(runbook: str, by: tuple[str, ...], values: Mapping[str, str]) -> str | None:
    """Return the runbook rule's key for these inventory values (None when one of them is unknown)."""
    parts = []
    for name in by:
        value = values.get(name)
        if value is None or value == "":
            return None
        parts.append(f"{name}={value}")
    return f"{runbook}:{','.join(parts)}"


def group_keys(alert: NewAlert, policy: GroupingPolicy = DEFAULT_POLICY) -> tuple[str, ...]:
    """Return the group keys an incident holding `alert` answers for (its gateway, its runbook rule)."""
    keys = []
    if alert.facts.gateway and policy.is_symptom(alert.runbook, alert.error):
        keys.append(f"gateway:{alert.facts.gateway}")
    spec = policy.runbook_rules.get(alert.runbook)
    value = None if spec is None else group_key(alert.runbook, spec.by, alert.facts.values)
    if value is not None:
        keys.append(value)
    return tuple(keys)


# -- the rules, in order ------------------------------------------------------------------------------


def _by_fingerprint(c: _Context) -> _Match | None:
    alert, incidents = c.alert, c.incidents
    for incident in incidents:
        if any(held.key == alert.key for held in incident.alerts):
            reason = f"the same alert again (key {alert.key})"
            return _Match(incident, GroupingRule.FINGERPRINT, alert.key, reason)
    return None


def _gateway_alerted(c: _Context) -> _Match | None:
    alert, incidents, snapshot, policy, window = c.alert, c.incidents, c.snapshot, c.policy, c.window
    gateway = alert.device_id
    for incident in incidents:
        if _crosses_site(alert, incident):
            continue
        behind = _devices(incident.alerts, policy, alert.at, window, gateway)
        if not behind:
            continue
        reason = f"{gateway} is the gateway of {_names(behind)} in this incident"
        if gateway not in (incident.device_id, incident.gateway):
            # An incident about more than this gateway's devices (a site's power) keeps its device.
            return _Match(incident, GroupingRule.GATEWAY, f"gateway:{gateway}", reason)
        offline = _devices(_all_alerts(snapshot), policy, alert.at, window, gateway, firing_only=True)
        count = max(len(offline), len(behind))
        cause = SuspectedCause(
            device_id=gateway,
            reason=f"{gateway} alerted with {_count(count, alert.facts.behind_device)} behind it offline",
            kind=CauseKind.GATEWAY_ALERTED,
        )
        return _Match(incident, GroupingRule.GATEWAY, f"gateway:{gateway}", reason, cause=cause)
    return None


def _behind_incident_gateway(c: _Context) -> _Match | None:
    alert, incidents, policy = c.alert, c.incidents, c.policy
    gateway = alert.facts.gateway
    if gateway is None or not policy.is_symptom(alert.runbook, alert.error):
        return None
    for incident in incidents:
        if _crosses_site(alert, incident):
            continue
        cause = incident.suspected_cause
        if incident.device_id == gateway:
            why = f"its gateway {gateway} is this incident's device"
        elif cause is not None and cause.device_id == gateway:
            why = f"its gateway {gateway} is this incident's suspected cause"
        else:
            continue
        return _Match(incident, GroupingRule.GATEWAY, f"gateway:{gateway}", why)
    return None


def _shared_gateway(c: _Context) -> _Match | None:
    alert, incidents, policy, window = c.alert, c.incidents, c.policy, c.window
    gateway = alert.facts.gateway
    if gateway is None or not policy.is_symptom(alert.runbook, alert.error):
        return None
    for incident in incidents:
        if _crosses_site(alert, incident):
            continue
        peers = _devices(incident.alerts, policy, alert.at, window, gateway) - {alert.device_id}
        if peers:
            why = f"connects through {gateway}, like {_names(peers)} within {_duration(window)}"
            return _Match(incident, GroupingRule.SHARED_GATEWAY, f"gateway:{gateway}", why)
    return None


def _runbook_rule(c: _Context) -> _Match | None:
    alert, incidents, policy, window = c.alert, c.incidents, c.policy, c.window
    spec = policy.runbook_rules.get(alert.runbook)
    if spec is None:
        return None
    key = group_key(alert.runbook, spec.by, alert.facts.values)
    if key is None:
        return None
    for incident in incidents:
        if _crosses_site(alert, incident):
            continue
        for held in incident.alerts:
            if (
                held.runbook == alert.runbook
                and _within(held.seen_at, alert.at, window)
                and group_key(held.runbook, spec.by, held.facts.values) == key
            ):
                by = ", ".join(spec.by)
                why = f"runbook {alert.runbook} groups by {by} ({key}) within {_duration(window)}"
                return _Match(incident, GroupingRule.RUNBOOK, key, why, by=spec.by)
    return None


_RULES = (_by_fingerprint, _gateway_alerted, _behind_incident_gateway, _shared_gateway, _runbook_rule)


# -- the cause ------------------------------------------------------------------------------------------


def _silent_gateway(
    alert: NewAlert,
    incident: OpenIncident | None,
    snapshot: Snapshot,
    policy: GroupingPolicy,
    window: timedelta,
) -> SuspectedCause | None:
    """Name a gateway that said nothing while enough devices behind it went offline."""
    gateway = alert.facts.gateway
    if gateway is None or not policy.is_symptom(alert.runbook, alert.error):
        return None
    if incident is not None:
        if incident.device_id != gateway and incident.gateway != gateway:
            return None  # an incident about something else (a site's power) keeps its device
        known = incident.suspected_cause
        spoke = known is not None and known.kind is CauseKind.GATEWAY_ALERTED
        if spoke or any(a.device_id == gateway for a in incident.alerts):
            return None  # the gateway spoke: the cause is already named
    alerts = [*_all_alerts(snapshot), alert.held()]
    if any(a.device_id == gateway and _within(a.seen_at, alert.at, window) for a in alerts):
        return None
    offline = [
        a
        for a in alerts
        if a.facts.gateway == gateway
        and a.status is AlertStatus.FIRING
        and policy.is_symptom(a.runbook, a.error)
        and _within(a.seen_at, alert.at, window)
    ]
    devices = {a.device_id for a in offline}
    if len(devices) < policy.silent_gateway_min:
        return None
    span = max(a.seen_at for a in offline) - min(a.seen_at for a in offline)
    return SuspectedCause(
        device_id=gateway,
        reason=(
            f"{_count(len(devices), alert.facts.behind_gateway)} behind {gateway}"
            f" offline within {_duration(span)}"
        ),
        kind=CauseKind.SILENT_GATEWAY,
    )


# -- helpers --------------------------------------------------------------------------------------------


def _all_alerts(snapshot: Snapshot) -> list[HeldAlert]:
    return [held for incident in snapshot.incidents for held in incident.alerts] + list(snapshot.recent)


def _devices(
    alerts: Iterable[HeldAlert],
    policy: GroupingPolicy,
    at: datetime,
    window: timedelta,
    gateway: str,
    *,
    firing_only: bool = False,
) -> set[str]:
    """Return the devices behind `gateway` with symptom alerts within the window."""
    return {
        held.device_id
        for held in alerts
        if held.facts.gateway == gateway
        and policy.is_symptom(held.runbook, held.error)
        and _within(held.seen_at, at, window)
        and (not firing_only or held.status is AlertStatus.FIRING)
    }


def _crosses_site(alert: NewAlert, incident: OpenIncident) -> bool:
    """Say whether joining would put devices of two sites in one incident (never done by a rule)."""
    site = alert.facts.site
    if site is None:
        return False
    return any(s is not None and s != site for s in (incident.site, *(a.facts.site for a in incident.alerts)))


def _within(seen_at: datetime, at: datetime, window: timedelta) -> bool:
    # Senders deliver out of order: a window is on both sides of the alert.
    return abs(at - seen_at) <= window


def _highest(*severities: Severity | None) -> Severity | None:
    present = [s for s in severities if s is not None]
    return Severity.highest(*present) if present else None


def _count(devices: int, total: int | None) -> str:
    noun = "device" if devices == 1 and not total else "devices"
    return f"{devices} of {total} {noun}" if total and total >= devices else f"{devices} {noun}"


def _names(devices: Iterable[str], shown: int = 3) -> str:
    ordered = sorted(devices)
    more = len(ordered) - shown
    return ", ".join(ordered[:shown]) + (f" and {more} more" if more > 0 else "")


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _why_opened(
    alert: NewAlert, policy: GroupingPolicy, window: timedelta, cause: SuspectedCause | None
) -> str:
    """Say why no rule matched, so a user can see which rule would have needed what."""
    parts = [f"no open incident holds key {alert.key}"]
    if alert.facts.gateway is None:
        parts.append("the inventory names no gateway for it")
    elif not policy.is_symptom(alert.runbook, alert.error):
        parts.append(f"{alert.error} is not a connectivity or power error, so its gateway does not group it")
    else:
        parts.append(f"no open incident on or behind {alert.facts.gateway} within {_duration(window)}")
    spec = policy.runbook_rules.get(alert.runbook)
    if spec is not None:
        key = group_key(alert.runbook, spec.by, alert.facts.values)
        if key is None:
            parts.append(f"runbook {alert.runbook} groups by {', '.join(spec.by)}, which the inventory lacks")
        else:
            parts.append(f"no open incident for {key} within {_duration(window)}")
    reason = "; ".join(parts)
    return reason if cause is None else f"{reason}; {cause.reason}"
