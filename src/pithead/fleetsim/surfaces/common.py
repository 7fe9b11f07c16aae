"""What the simulated vendor surfaces share: content types, JSON replies, the best-share figure.

Not a vendor surface itself (see the sibling modules), and no sockets or HTTP framing (`server`, `http`).
"""

from __future__ import annotations

from typing import Any

import orjson

from pithead.fleetsim.clock import draw
from pithead.fleetsim.device import SimDevice, Snapshot

HTML_CT = "text/html"
JSON_CT = "application/json"
# A random stream of the device seed that only the best-share figure draws from.
S_BEST_SHARE = 9
# The best share's spread: a factor 1..BEST_SHARE_SPREAD of the pool difficulty, fixed per share count.
BEST_SHARE_SPREAD = 997

# (status, body, content type, extra headers): what a web surface answers one request with.
WebReply = tuple[int, bytes, str, tuple[tuple[str, str], ...]]


def json_reply(obj: Any) -> WebReply:
    return 200, orjson.dumps(obj), JSON_CT, ()


def best_share(dev: SimDevice, snap: Snapshot) -> int:
    """The best share's difficulty: it grows roughly with the number of shares found, and is fixed per
    (device, share count)."""
    return int(
        snap.pool_diff
        * (1 + draw(dev.seed, S_BEST_SHARE, snap.accepted.bit_length()) % BEST_SHARE_SPREAD)
        * max(1, snap.accepted) ** 0.5
    )
