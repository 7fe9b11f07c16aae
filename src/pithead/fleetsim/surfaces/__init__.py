"""What each simulated device says on the wire: snapshots → vendor payloads, one module per vendor surface.

- `antminer_api`: a stock Antminer's cgminer API (bmminer on TCP 4028).
- `antminer_web`: a stock Antminer's web CGI (JSON behind HTTP Digest on port 80).
- `whatsminer`: a Whatsminer's btminer API v2 (reads; writes through the token flow: power limit) and its
  HTTPS redirect.
- `axeos`: a Bitaxe's AxeOS HTTP API (frequency/voltage through PATCH /api/system).
- `luxos`: an Antminer on LuxOS (cgminer-style API with session-guarded power profiles).
- `common`: what they share (content types, JSON replies, the best-share figure).

Each is a set of pure functions from (fleet, device, request, simulated time) to reply bytes or objects,
built with the farm's codecs in `pithead.farm.protocol`. `SURFACES` says which surfaces each family of
device has, so the server dispatches on data, not on vendor branches.

Not here: sockets, HTTP framing, digest checks (see `server`, `http`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pithead.fleetsim.device import SimDevice
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.models import Family
from pithead.fleetsim.surfaces import antminer_api, antminer_web, axeos, luxos, whatsminer
from pithead.fleetsim.surfaces.common import WebReply

# (fleet, device, request bytes, simulated time) -> the reply bytes of one cgminer-API connection
ApiHandler = Callable[[Fleet, SimDevice, bytes, float], bytes]
# (fleet, device, method, path, body, simulated time) -> one web reply
WebHandler = Callable[[Fleet, SimDevice, str, str, bytes, float], WebReply]


@dataclass(frozen=True, slots=True)
class Surfaces:
    """What one family of device serves: its cgminer-style API (None: nothing listens on that port, as
    on a Bitaxe) and its web interface, which on a stock Antminer wants HTTP Digest first."""

    api: ApiHandler | None
    web: WebHandler
    web_digest: bool


SURFACES: dict[Family, Surfaces] = {
    Family.ANTMINER: Surfaces(antminer_api.api_bytes, antminer_web.web, web_digest=True),
    Family.WHATSMINER: Surfaces(whatsminer.api_bytes, whatsminer.web, web_digest=False),
    Family.BITAXE: Surfaces(None, axeos.web, web_digest=False),
    Family.LUXOS: Surfaces(luxos.api_bytes, luxos.web, web_digest=False),
}
