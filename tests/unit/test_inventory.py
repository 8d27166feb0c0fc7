"""The shipped device inventory: what the enrich step learns about a device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.inventory import INVENTORY_FILE, enrichment_from_record, lookup
from include.models import Enrichment


def test_known_device_is_enriched() -> None:
    enrichment = lookup("PUMP-07B")
    assert enrichment == Enrichment(
        device_id="PUMP-07B",
        known=True,
        site="Plant North",
        gateway="GW-NORTH-1",
        kind="pump",
        model="Grundfos CR 45",
        firmware="4.2.1",
        criticality="high",
        owner_team="fluids",
        source="inventory-file",
    )


def test_unknown_device_is_known_false() -> None:
    enrichment = lookup("NO-SUCH-DEVICE")
    assert enrichment.known is False
    assert enrichment.device_id == "NO-SUCH-DEVICE"
    assert (enrichment.site, enrichment.kind, enrichment.model, enrichment.owner_team) == (
        None,
        None,
        None,
        None,
    )


def test_lookup_is_exact_about_ids() -> None:
    assert lookup("pump-07b").known is False


@pytest.mark.parametrize("device_id", sorted(json.loads(INVENTORY_FILE.read_text(encoding="utf-8"))))
def test_every_shipped_device_is_enriched_and_round_trips(device_id: str) -> None:
    enrichment = lookup(device_id)
    assert enrichment.known and enrichment.site and enrichment.kind
    assert Enrichment.from_xcom(enrichment.to_xcom()) == enrichment


def test_custom_inventory_file_keeps_known_fields_only(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(
        json.dumps(
            {
                "VALVE-1": {
                    "site": "Dock",
                    "firmware": 3.1,  # numbers become strings
                    "criticality": None,  # nulls are left unset
                    "rack": "R7",  # unknown fields are ignored, not an error
                    "known": False,  # cannot override what the lookup found
                    "device_id": "OTHER",
                }
            }
        ),
        encoding="utf-8",
    )
    enrichment = lookup("VALVE-1", path)
    assert enrichment.known is True and enrichment.device_id == "VALVE-1"
    assert (enrichment.site, enrichment.firmware, enrichment.criticality) == ("Dock", "3.1", None)
    assert lookup("PUMP-07B", path).known is False


def test_enrichment_from_another_source() -> None:
    enrichment = enrichment_from_record("X-9", {"site": "Lab", "kind": "robot"}, source="cmdb")
    assert (enrichment.known, enrichment.source, enrichment.site, enrichment.kind) == (
        True,
        "cmdb",
        "Lab",
        "robot",
    )
