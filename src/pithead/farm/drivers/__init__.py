"""Device drivers: vendor adapters that turn wire protocols into the canonical model.

`default_drivers()` gives one driver per `DriverKind`; the pyasic adapter imports pyasic only when used.
"""

from __future__ import annotations

from pithead.farm.drivers.axeos import AxeOSDriver
from pithead.farm.drivers.base import Driver
from pithead.farm.drivers.cgminer import CgminerDriver
from pithead.farm.drivers.pyasic_driver import PyasicDriver
from pithead.farm.model import DriverKind


def default_drivers() -> dict[DriverKind, Driver]:
    return {DriverKind.CGMINER: CgminerDriver(), DriverKind.AXEOS: AxeOSDriver(), DriverKind.PYASIC: PyasicDriver()}
