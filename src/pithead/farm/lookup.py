"""Finding and ordering devices the way an operator names them: natural order, and an IP for an id.

- `natural_key`: "rack-2" before "rack-10", 127.0.0.9 before 127.0.0.10 (digit runs compare as numbers).
- `status_sort_key`: a device status in site, rack, position, address order, naturally.
- `resolve_device`: the full id (`cgminer://10.1.0.5:4028`) is what the store knows, but an operator
  types `10.1.0.5` or `10.1.0.5:4028`; an IP (or host:port) that names exactly one device is that device,
  and one that names several is refused with the ids to choose from.

Pure: no I/O, no store; the callers hand in the devices.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from pithead.farm.model import Device, FarmError
from pithead.farm.store import DeviceStatus

_DIGITS = re.compile(r"([0-9]+)")
# natural_key results kept (LRU): a table or rack-map request sorts the whole fleet, and its ids and labels
# repeat from request to request. 65,536 covers a 24,000-device fleet's ids and labels (~15 MB at most).
NATURAL_KEY_CACHE = 65_536
# Ids listed when a reference is ambiguous (a host with many ports is a test rig, not a farm).
MAX_LISTED_IDS = 10


class DeviceLookupError(FarmError, KeyError):
    """A device reference that names no device, or more than one (the message says which)."""

    def __str__(self) -> str:  # KeyError quotes its argument; this is a sentence
        return str(self.args[0]) if self.args else ""


@functools.lru_cache(maxsize=NATURAL_KEY_CACHE)
def natural_key(text: str) -> tuple[str | int, ...]:
    """A sort key comparing runs of digits as numbers: "10" after "9", "rack-10" after "rack-2", case
    ignored. Splitting on digit runs alternates text (even places) and numbers (odd places), so two keys
    always compare text with text and numbers with numbers."""
    parts: list[str | int] = list(_DIGITS.split(text.lower()))
    parts[1::2] = [int(p) for p in parts[1::2]]
    return tuple(parts)


def status_sort_key(st: DeviceStatus) -> tuple[tuple[str | int, ...] | int | str, ...]:
    """Site, rack, position, then address (host naturally, port, driver): a device's place in every list."""
    d = st.device
    lab = d.labels
    a = d.address
    return (natural_key(lab.site), natural_key(lab.rack), natural_key(lab.position), natural_key(a.host), a.port,
            a.driver.value)


def resolve_device(ref: str, devices: Iterable[Device]) -> str:
    """The id of the one device `ref` names: its full id, its host, or host:port. Raises
    `DeviceLookupError` saying what is known, or which ids an ambiguous reference matches."""
    ref = ref.strip()
    devs = list(devices)
    for d in devs:
        if d.id == ref:
            return d.id
    host, sep, port = ref.rpartition(":")
    if sep and port.isdigit() and "://" not in ref:
        hits = [d for d in devs if d.address.host == host.strip("[]") and d.address.port == int(port)]
    else:
        hits = [d for d in devs if d.address.host == ref]
    if len(hits) == 1:
        return hits[0].id
    if not hits:
        raise DeviceLookupError(f"unknown device {ref!r}: give its id (e.g. cgminer://10.1.0.5:4028), its IP "
                                "or IP:port, as `pithead farm status` lists them")
    ids = sorted((d.id for d in hits), key=natural_key)
    listed = ", ".join(ids[:MAX_LISTED_IDS]) + (f" and {len(ids) - MAX_LISTED_IDS} more"
                                               if len(ids) > MAX_LISTED_IDS else "")
    raise DeviceLookupError(f"{ref!r} names {len(ids)} devices ({listed}): give the full id or IP:port")
