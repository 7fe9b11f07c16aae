"""The cgminer / bmminer RPC API (TCP 4028), as stock Antminers speak it: a sans-IO codec in four parts.

- `wire`: the request codec and the reply envelope (framing, the STATUS block, error replies, the
  plain-text form, the one normaliser for vendor JSON quirks), and cgminer's message codes.
- `sections`: the typed values of the report sections (VERSION, SUMMARY, POOLS, STATS, DEVS), one type
  per thing a section describes, shared by both directions.
- `build`: the server side, sections written as a stock Antminer writes them (the simulated fleet).
- `parse`: the client side, replies read back into `sections` values (the farm's driver).

The simulated fleet serves, and the farm reads, this same codec, so the two can never drift apart.
Nothing here opens sockets or reads the clock.
"""
