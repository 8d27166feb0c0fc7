"""The device inventory shipped as the embedded default (a JSON file keyed by device id)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from include.models import Enrichment
from include.topology import Topology

INVENTORY_FILE = Path(__file__).parent / "device_inventory.json"


@functools.cache
def _load(path: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return records


def lookup(device_id: str, path: Path = INVENTORY_FILE) -> Enrichment:
    """Return what the inventory file knows about `device_id` (known=False when nothing)."""
    record = _load(path).get(device_id)
    if record is None:
        return Enrichment(device_id=device_id, known=False)
    return enrichment_from_record(device_id, record, source="inventory-file")


def enrichment_from_record(device_id: str, record: dict[str, Any], *, source: str) -> Enrichment:
    """Build an Enrichment from an inventory record, ignoring fields the model does not know."""
    fields = {
        k: str(v)
        for k, v in record.items()
        if k in Enrichment.model_fields and k not in ("device_id", "known", "source") and v is not None
    }
    return Enrichment(device_id=device_id, known=True, source=source, **fields)


def load_topology(path: Path = INVENTORY_FILE) -> Topology:
    """Return which device sits behind which gateway, from the inventory file's `gateway` fields."""
    return Topology.from_records(_load(path))
