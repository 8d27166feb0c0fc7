"""The topology read from the inventory: which device connects through which gateway."""

from __future__ import annotations

from include.inventory import load_topology
from include.models import Enrichment
from include.runbooks import GROUPING_FIELDS
from include.topology import Topology


def test_the_shipped_inventory_has_two_gateways_at_two_sites() -> None:
    topology = load_topology()
    assert topology.gateways == {"GW-NORTH-1", "GW-SOUTH-1"}
    assert topology.behind("GW-NORTH-1") == {"PUMP-07B", "PUMP-12A", "SENSOR-T-88"}
    assert topology.behind("GW-SOUTH-1") == {"COMP-03", "MOTOR-21", "VALVE-S-04"}
    for gateway in topology.gateways:
        assert {topology.site_of(d) for d in topology.behind(gateway)} == {topology.site_of(gateway)}
    assert topology.gateway_of("PUMP-07B") == "GW-NORTH-1" and topology.gateway_of("GW-NORTH-1") is None


def test_unknown_devices_and_odd_records() -> None:
    topology = Topology.from_records(
        {
            "A": {"gateway": "A", "site": "X"},  # behind itself: ignored
            "B": {"gateway": "", "site": None},
            "C": {"gateway": "G", "site": 7},
        }
    )
    assert topology.gateway_of("A") is None and not topology.is_gateway("A")
    assert topology.gateway_of("B") is None and topology.site_of("B") is None
    assert topology.gateway_of("C") == "G" and topology.site_of("C") == "7"
    assert topology.is_gateway("G") and topology.behind("NOPE") == frozenset()
    assert topology.site_of("NOPE") is None and topology.gateway_of("NOPE") is None


def test_grouping_fields_are_the_inventory_fields() -> None:
    assert set(GROUPING_FIELDS) == set(Enrichment.model_fields) - {"device_id", "known", "source"}
