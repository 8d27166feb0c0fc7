"""The grouping rules: which incident an alert belongs to, and the cause they name."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.grouping import decide, group_key, group_keys, lookup_keys
from include.grouping_model import (
    DEFAULT_POLICY,
    Facts,
    GroupingPolicy,
    HeldAlert,
    OpenIncident,
    Snapshot,
    SuspectedCause,
)
from include.runbooks import load_runbooks
from include.topology import Topology
from include.vocabulary import AlertStatus, CauseKind, GroupingOutcome, GroupingRule, Severity
from tests.unit.grouping_sim import T0, Store, alert

POLICY = GroupingPolicy.from_runbooks(load_runbooks())


def _fleet(gateways: dict[str, tuple[str, int]]) -> Topology:
    """Return a topology: per gateway, its site and how many devices sit behind it."""
    records: dict[str, dict[str, str]] = {}
    for gateway, (site, count) in gateways.items():
        records[gateway] = {"site": site, "kind": "gateway"}
        for n in range(count):
            records[f"{gateway}-D{n:02d}"] = {"site": site, "gateway": gateway, "kind": "pump"}
    return Topology.from_records(records)


FLEET = _fleet({"GW-A": ("North", 30), "GW-B": ("North", 5), "GW-C": ("South", 5)})


def _devices(gateway: str, count: int) -> list[str]:
    return [f"{gateway}-D{n:02d}" for n in range(count)]


# -- a gateway outage ---------------------------------------------------------------------------------


def test_a_lone_alert_opens_its_own_incident_and_says_why() -> None:
    decision = decide(alert(FLEET, "GW-A-D00"), Snapshot(), POLICY)
    assert decision.outcome is GroupingOutcome.OPENED
    assert decision.incident_id is decision.rule is decision.rule_name is decision.cause is None
    assert decision.device_id == "GW-A-D00"
    assert "no open incident on or behind GW-A" in decision.reason
    assert decision.group_keys == ("gateway:GW-A",)


def test_devices_behind_one_gateway_share_an_incident() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-A-D00"))
    second = store.take(alert(FLEET, "GW-A-D01", seconds=2))
    assert second.outcome is GroupingOutcome.GROUPED
    assert (second.incident_id, second.rule) == ("I1", GroupingRule.SHARED_GATEWAY)
    assert second.key == "gateway:GW-A"
    assert second.window == timedelta(minutes=10)
    assert "connects through GW-A, like GW-A-D00" in second.reason
    detail = second.timeline_detail()
    assert detail["rule"] == "shared_gateway" and detail["window_seconds"] == 600


def test_a_silent_gateway_is_named_once_three_devices_are_offline() -> None:
    store = Store(POLICY)
    for n, device in enumerate(_devices("GW-A", 2)):
        assert store.take(alert(FLEET, device, seconds=n)).cause is None
    third = store.take(alert(FLEET, "GW-A-D02", seconds=12))
    assert third.cause == SuspectedCause(
        "GW-A", "3 of 30 devices behind GW-A offline within 12 s", CauseKind.SILENT_GATEWAY
    )
    assert third.device_id == "GW-A"
    for n, device in enumerate(_devices("GW-A", 27)[3:]):
        last = store.take(alert(FLEET, device, seconds=13 + n))
    assert last.cause is not None and last.cause.as_dict() == {
        "device_id": "GW-A",
        "reason": "27 of 30 devices behind GW-A offline within 36 s",
    }
    [incident] = store.incidents.values()
    assert incident.device_id == "GW-A" and len(incident.alerts) == 27


def test_the_gateway_alerting_after_its_devices_takes_the_incident_over() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-A-D00"))
    store.take(alert(FLEET, "GW-A-D01", seconds=1))
    decision = store.take(alert(FLEET, "GW-A", "GATEWAY_DOWN", seconds=5, severity=Severity.CRITICAL))
    assert decision.outcome is GroupingOutcome.GROUPED and decision.rule is GroupingRule.GATEWAY
    assert decision.device_id == "GW-A"
    assert decision.cause is not None and decision.cause.kind is CauseKind.GATEWAY_ALERTED
    assert decision.cause.reason == "GW-A alerted with 2 of 30 devices behind it offline"
    assert decision.pages_again  # raised to critical after the run may have branched
    # The devices stay as affected; later ones join through the gateway.
    later = store.take(alert(FLEET, "GW-A-D02", seconds=6))
    assert (later.incident_id, later.rule, later.cause) == ("I1", GroupingRule.GATEWAY, None)
    assert "its gateway GW-A is this incident's device" in later.reason
    assert len(store.incidents) == 1


def test_devices_join_the_gateways_own_incident() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-A", "GATEWAY_DOWN"))
    for n, device in enumerate(_devices("GW-A", 10)):
        decision = store.take(alert(FLEET, device, seconds=n))
        assert (decision.incident_id, decision.rule, decision.cause) == ("I1", GroupingRule.GATEWAY, None)
    assert len(store.incidents) == 1


def test_devices_join_an_incident_whose_suspected_cause_is_their_gateway() -> None:
    cause = SuspectedCause("GW-A", "named earlier", CauseKind.SILENT_GATEWAY)
    incident = OpenIncident("I9", "PUMP-1", "connectivity", T0, site="North", suspected_cause=cause)
    decision = decide(alert(FLEET, "GW-A-D05", seconds=3600), Snapshot((incident,)), POLICY)
    assert (decision.incident_id, decision.rule) == ("I9", GroupingRule.GATEWAY)
    assert "suspected cause" in decision.reason


def test_a_repeat_is_deduplicated_and_never_lowers_severity() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-C-D00", severity=Severity.CRITICAL))
    again = store.take(alert(FLEET, "GW-C-D00", seconds=30, severity=Severity.INFO))
    assert again.outcome is GroupingOutcome.DEDUPLICATED and again.rule is GroupingRule.FINGERPRINT
    assert again.severity is Severity.CRITICAL and not again.severity_raised and not again.pages_again


def test_an_alert_out_of_the_window_opens_a_new_incident() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-B-D00"))
    decision = store.take(alert(FLEET, "GW-B-D01", seconds=601))
    assert decision.outcome is GroupingOutcome.OPENED


def test_an_alert_from_before_the_window_edge_still_joins() -> None:
    # Senders deliver late: the window reaches both ways.
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-B-D00", seconds=300))
    assert store.take(alert(FLEET, "GW-B-D01", seconds=0)).outcome is GroupingOutcome.GROUPED


# -- no wrong merges ----------------------------------------------------------------------------------


def test_devices_behind_another_gateway_at_the_same_moment_stay_apart() -> None:
    store = Store(POLICY)
    for n, device in enumerate(_devices("GW-A", 5)):
        store.take(alert(FLEET, device, seconds=n))
    other = store.take(alert(FLEET, "GW-B-D00", seconds=2))
    south = store.take(alert(FLEET, "GW-C-D00", seconds=2))
    assert other.outcome is south.outcome is GroupingOutcome.OPENED
    assert len(store.incidents) == 3


def test_a_device_without_a_gateway_is_never_grouped_by_topology() -> None:
    store = Store(POLICY)
    for n, device in enumerate(_devices("GW-A", 5)):
        store.take(alert(FLEET, device, seconds=n))
    lone = store.take(alert(FLEET, "NOT-IN-INVENTORY", seconds=1))
    assert lone.outcome is GroupingOutcome.OPENED
    assert "the inventory names no gateway for it" in lone.reason


def test_an_overheating_pump_behind_a_failed_gateway_is_its_own_incident() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-A", "GATEWAY_DOWN"))
    hot = store.take(alert(FLEET, "GW-A-D07", "OVERHEATING", seconds=3, severity=Severity.CRITICAL))
    assert hot.outcome is GroupingOutcome.OPENED
    assert "not a connectivity or power error" in hot.reason
    assert store.incidents["I1"].severity is None  # the gateway's incident was not raised by it


def test_no_rule_joins_across_sites_even_when_the_inventory_disagrees() -> None:
    # A device recorded at another site than its gateway's: the site wins, nothing is merged.
    odd = Topology.from_records(
        {
            "GW-X": {"site": "North"},
            "D1": {"site": "North", "gateway": "GW-X"},
            "D2": {"site": "South", "gateway": "GW-X"},
        }
    )
    store = Store(POLICY)
    store.take(alert(odd, "D1"))
    assert store.take(alert(odd, "D2", seconds=1)).outcome is GroupingOutcome.OPENED


# -- a runbook's rule ---------------------------------------------------------------------------------


def test_a_sites_power_loss_is_one_incident_across_gateways() -> None:
    store = Store(POLICY)
    store.take(alert(FLEET, "GW-A-D00", "POWER_LOSS"))
    decision = store.take(alert(FLEET, "GW-B-D00", "POWER_LOSS", seconds=20))
    assert decision.outcome is GroupingOutcome.GROUPED
    assert (decision.rule, decision.by) == (GroupingRule.RUNBOOK, ("site",))
    assert decision.rule_name == "runbook:site"
    assert decision.key == "power:site=North"
    south = store.take(alert(FLEET, "GW-C-D00", "POWER_LOSS", seconds=20))
    assert south.outcome is GroupingOutcome.OPENED


def test_a_runbook_rule_needs_the_inventory_value() -> None:
    decision = decide(alert(FLEET, "UNKNOWN-1", "POWER_LOSS"), Snapshot(), POLICY)
    assert "runbook power groups by site, which the inventory lacks" in decision.reason
    assert group_key("power", ("site",), {}) is None
    assert group_key("power", ("site", "kind"), {"site": "N", "kind": "pump"}) == "power:site=N,kind=pump"


def test_without_the_runbooks_policy_no_runbook_rule_applies() -> None:
    store = Store(DEFAULT_POLICY)
    store.take(alert(FLEET, "GW-A-D00", "OVERCURRENT"))
    assert store.take(alert(FLEET, "GW-B-D00", "OVERCURRENT", seconds=1)).outcome is GroupingOutcome.OPENED


# -- the lookups and the guard ------------------------------------------------------------------------


def test_lookup_keys_name_what_the_store_queries() -> None:
    keys = lookup_keys(alert(FLEET, "GW-A-D03", "POWER_LOSS", seconds=60), POLICY)
    assert (keys.fingerprint, keys.gateway, keys.gateways) == (
        "GW-A-D03:POWER_LOSS",
        "GW-A",
        ("GW-A", "GW-A-D03"),
    )
    assert keys.runbook_group == ("power", "power:site=North")
    assert (keys.since, keys.until) == (T0 - timedelta(minutes=9), T0 + timedelta(minutes=11))
    assert group_keys(alert(FLEET, "GW-A-D03", "POWER_LOSS"), POLICY) == ("gateway:GW-A", "power:site=North")


@pytest.mark.parametrize("status", [AlertStatus.RESOLVED, AlertStatus.ACKNOWLEDGED])
def test_only_firing_alerts_are_grouped(status: AlertStatus) -> None:
    with pytest.raises(ValueError, match="only firing alerts"):
        decide(replace(alert(FLEET, "GW-A-D00"), status=status), Snapshot(), POLICY)


def test_facts_from_the_shipped_inventory() -> None:
    from include.inventory import load_topology, lookup

    facts = Facts.from_inventory(lookup("PUMP-07B"), load_topology())
    assert (facts.site, facts.gateway, facts.behind_gateway) == ("Plant North", "GW-NORTH-1", 3)
    assert facts.values["kind"] == "pump" and facts.values["gateway"] == "GW-NORTH-1"
    gateway = Facts.from_inventory(lookup("GW-NORTH-1"), load_topology())
    assert (gateway.gateway, gateway.behind_device) == (None, 3)


def test_a_recent_alert_outside_any_open_incident_counts_for_a_silent_gateway() -> None:
    recent = tuple(
        HeldAlert(d, "DEVICE_OFFLINE", f"{d}:k", "connectivity", T0, Facts(site="North", gateway="GW-B"))
        for d in _devices("GW-B", 2)
    )
    decision = decide(alert(FLEET, "GW-B-D04", seconds=4), Snapshot(recent=recent), POLICY)
    assert decision.outcome is GroupingOutcome.OPENED and decision.device_id == "GW-B"
    assert decision.cause is not None and decision.cause.reason.startswith("3 of 5 devices behind GW-B")


# -- storms -------------------------------------------------------------------------------------------

SITES = ("North", "South", "East")
Storm = tuple[Topology, dict[str, bool], list[tuple[float, str, str, Severity | None]]]
SEVERITIES = st.sampled_from([None, Severity.INFO, Severity.WARNING, Severity.CRITICAL])


@st.composite
def storms(draw: st.DrawFn) -> Storm:
    """A fleet of gateways over sites, some of which fail (speaking or silent), with unrelated noise."""
    gateways = {
        f"GW-{n}": (draw(st.sampled_from(SITES)), draw(st.integers(3, 6)))
        for n in range(draw(st.integers(2, 5)))
    }
    topology = _fleet(gateways)
    failing = {gw: draw(st.booleans()) for gw in gateways if draw(st.booleans())}
    events: list[tuple[float, str, str, Severity | None]] = []
    for gateway, speaks in failing.items():
        start = draw(st.floats(0, 120))
        for device in _devices(gateway, gateways[gateway][1]):
            events.append((start + draw(st.floats(0, 40)), device, "DEVICE_OFFLINE", draw(SEVERITIES)))
        if speaks:
            events.append((start + draw(st.floats(0, 40)), gateway, "GATEWAY_DOWN", draw(SEVERITIES)))
    for gateway, (_, count) in gateways.items():
        # Noise at the same moments: a healthy gateway's device offline, any device overheating.
        if gateway not in failing and draw(st.booleans()):
            events.append((draw(st.floats(0, 160)), f"{gateway}-D00", "DEVICE_OFFLINE", draw(SEVERITIES)))
        if draw(st.booleans()):
            device = f"{gateway}-D{draw(st.integers(0, count - 1)):02d}"
            events.append((draw(st.floats(0, 160)), device, "OVERHEATING", draw(SEVERITIES)))
    return topology, failing, sorted(events, key=lambda e: (e[0], e[1]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(storms())
def test_a_storm_is_one_incident_per_gateway_outage_and_nothing_else_merges(
    storm: Storm,
) -> None:
    topology, failing, events = storm
    store = Store(POLICY)
    for seconds, device, error, severity in events:
        store.take(alert(topology, device, error, seconds=seconds, severity=severity))

    for incident in store.incidents.values():
        held = incident.alerts
        # Never across sites or gateways: one gateway group (a gateway and its own devices) per incident.
        assert len({topology.site_of(a.device_id) for a in held}) == 1
        groups = {a.device_id if topology.is_gateway(a.device_id) else a.facts.gateway for a in held}
        assert len(groups) == 1, f"{incident.incident_id} merges {groups}"
        # An overheating device is never merged with anything.
        if any(a.error == "OVERHEATING" for a in held):
            assert len(held) == 1
        # Severity is the highest of its alerts' and was never lowered on the way.
        expected = [a.severity for a in held if a.severity is not None]
        assert incident.severity == (Severity.highest(*expected) if expected else None)
        history = [s for s in store.severities[incident.incident_id] if s is not None]
        assert all(a <= b for a, b in zip(history, history[1:], strict=False))

    for gateway in failing:
        holding = {
            i.incident_id
            for i in store.incidents.values()
            for a in i.alerts
            if a.error != "OVERHEATING" and (a.device_id == gateway or a.facts.gateway == gateway)
        }
        assert len(holding) == 1, f"{gateway}'s outage is {len(holding)} incidents"
        [incident_id] = holding
        # Three or more devices, or the gateway's own alert: the incident is on the gateway.
        assert store.incidents[incident_id].device_id == gateway


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["GW-A", "GW-B", "GW-C"]), st.integers(0, 4), st.floats(0, 60), SEVERITIES),
        min_size=1,
        max_size=30,
    )
)
def test_a_power_storm_never_merges_across_sites(
    events: list[tuple[str, int, float, Severity | None]],
) -> None:
    store = Store(POLICY)
    for gateway, n, seconds, severity in sorted(events, key=lambda e: (e[2], e[0], e[1])):
        store.take(alert(FLEET, f"{gateway}-D{n:02d}", "POWER_LOSS", seconds=seconds, severity=severity))
    for incident in store.incidents.values():
        assert len({FLEET.site_of(a.device_id) for a in incident.alerts}) == 1
    # North's two gateways lose power together: one incident for the site.
    north = {i.incident_id for i in store.incidents.values() if i.site == "North"}
    assert len(north) <= 1
