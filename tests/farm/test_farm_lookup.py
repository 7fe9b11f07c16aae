"""Natural order and naming a device by its IP (`pithead.farm.lookup`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pithead.farm.lookup import DeviceLookupError, natural_key, resolve_device
from pithead.farm.model import Device, DeviceAddress, DriverKind, Identity


def test_natural_order() -> None:
    names = ["rack-10", "Rack-2", "rack-1", "10.0.0.100", "10.0.0.9", "10.0.0.10", "", "a", "a1b2", "a1b10"]
    assert sorted(names, key=natural_key) == ["", "10.0.0.9", "10.0.0.10", "10.0.0.100", "a", "a1b2", "a1b10",
                                              "rack-1", "Rack-2", "rack-10"]


@settings(deadline=None)  # no timing: a loaded machine must not fail it
@given(st.lists(st.text(alphabet="ab-.019", max_size=8), max_size=12))
def test_natural_key_orders_any_strings_without_a_type_error(texts: list[str]) -> None:
    ordered = sorted(texts, key=natural_key)  # text compares with text, numbers with numbers
    assert sorted(ordered, key=natural_key) == ordered


def _dev(host: str, port: int, driver: DriverKind = DriverKind.CGMINER) -> Device:
    return Device(DeviceAddress(host, port, driver), Identity("Antminer", "S19"))


def test_resolve_by_id_ip_or_ip_port() -> None:
    devs = [_dev("10.0.0.5", 4028), _dev("10.0.0.6", 4028), _dev("10.0.0.6", 80, DriverKind.AXEOS), _dev("::1", 4028)]
    assert resolve_device("cgminer://10.0.0.5:4028", devs) == "cgminer://10.0.0.5:4028"
    assert resolve_device(" 10.0.0.5 ", devs) == "cgminer://10.0.0.5:4028"
    assert resolve_device("10.0.0.6:80", devs) == "axeos://10.0.0.6:80"
    assert resolve_device("[::1]:4028", devs) == "cgminer://::1:4028"
    with pytest.raises(DeviceLookupError, match=r"'10.0.0.6' names 2 devices \(axeos://10.0.0.6:80, "
                                                r"cgminer://10.0.0.6:4028\)"):
        resolve_device("10.0.0.6", devs)
    for unknown in ("10.0.0.7", "10.0.0.5:4029", "cgminer://10.0.0.7:4028", ""):
        with pytest.raises(DeviceLookupError, match="unknown device"):
            resolve_device(unknown, devs)
