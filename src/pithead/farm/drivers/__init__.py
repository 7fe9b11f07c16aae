"""Device drivers: vendor adapters that turn wire protocols into the canonical model.

`default_drivers()` gives one driver per `DriverKind`; the pyasic adapter imports pyasic only when used.
"""

from __future__ import annotations

from pithead.farm.drivers.axeos import AxeOSDriver
from pithead.farm.drivers.base import Driver
from pithead.farm.drivers.cgminer import CgminerDriver
from pithead.farm.drivers.pyasic_driver import PyasicDriver
from pithead.farm.model import DriverKind


def default_drivers(antminer_web_port: int = 80) -> dict[DriverKind, Driver]:
    """One driver per kind. `antminer_web_port` is where cgminer-API devices serve their stock web
    interface (used for sleep/wake); 80 on real hardware, something else only in simulation."""
    return {DriverKind.CGMINER: CgminerDriver(web_port=antminer_web_port), DriverKind.AXEOS: AxeOSDriver(),
            DriverKind.PYASIC: PyasicDriver()}
