"""Sans-IO wire codecs of real mining devices, shared by the fleet manager's drivers and the simulator.

- `cgminer`: the cgminer/bmminer RPC API on TCP 4028, a package: `wire` (requests incl. `cmd1+cmd2`,
  NUL-terminated replies, STATUS blocks), `sections` (the typed section values), `build` (server side,
  what the simulated fleet serves) and `parse` (client side, what the drivers read).
- `axeos`: the Bitaxe AxeOS HTTP JSON API (system info, asic info, settings PATCH, power levels from
  its frequency/voltage options).
- `antminer_web`: the stock Antminer CGI JSON payloads behind HTTP Digest auth.
- `luxos`: LuxOS's session-guarded commands (logon/logoff, profiles, profileset, curtail).
- `whatsminer`: the Whatsminer write API's token flow (md5-crypt, AES) and `adjust_power_limit`.
- `errors`: the typed errors all of them raise.

Nothing here opens sockets or reads the clock; timestamps come in as parameters.
"""

from pithead.farm.protocol.errors import (
    AntminerWebPayloadError,
    AxeOSPayloadError,
    CgminerCommandError,
    CgminerReplyError,
    CgminerRequestError,
    CodecError,
)

__all__ = [
    "AntminerWebPayloadError",
    "AxeOSPayloadError",
    "CgminerCommandError",
    "CgminerReplyError",
    "CgminerRequestError",
    "CodecError",
]
