"""Which device connects through which gateway, read from inventory records.

An inventory record may name its `gateway`: the id of the device through which this one connects.
The grouping rules (include/grouping.py) use it to tell a gateway outage from devices that happen to
fail at the same moment. Pure: built from records already loaded, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Topology:
    """The gateway and site of each device, and the devices behind each gateway."""

    _gateway: Mapping[str, str] = field(default_factory=dict)
    _site: Mapping[str, str] = field(default_factory=dict)
    _behind: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Mapping[str, Mapping[str, Any]]) -> Topology:
        """Build the view from inventory records keyed by device id (unknown fields are ignored).

        A record naming itself as its gateway is ignored: a device cannot sit behind itself, and a
        loop there would make every alert of it a gateway outage.
        """
        gateway: dict[str, str] = {}
        site: dict[str, str] = {}
        behind: dict[str, set[str]] = {}
        for device_id, record in records.items():
            if record.get("site") is not None:
                site[device_id] = str(record["site"])
            via = record.get("gateway")
            if via is None or str(via) == device_id or str(via) == "":
                continue
            gateway[device_id] = str(via)
            behind.setdefault(str(via), set()).add(device_id)
        return cls(
            MappingProxyType(gateway),
            MappingProxyType(site),
            MappingProxyType({gw: frozenset(devices) for gw, devices in behind.items()}),
        )

    def gateway_of(self, device_id: str) -> str | None:
        """Return the id of the device through which `device_id` connects, if the inventory says."""
        return self._gateway.get(device_id)

    def site_of(self, device_id: str) -> str | None:
        """Return the site of `device_id`, if the inventory says."""
        return self._site.get(device_id)

    def behind(self, gateway_id: str) -> frozenset[str]:
        """Return the devices that connect through `gateway_id` (empty when it is no gateway)."""
        return self._behind.get(gateway_id, frozenset())

    def is_gateway(self, device_id: str) -> bool:
        """Say whether any device connects through `device_id`."""
        return device_id in self._behind

    @property
    def gateways(self) -> frozenset[str]:
        """Return every device that has devices behind it."""
        return frozenset(self._behind)
