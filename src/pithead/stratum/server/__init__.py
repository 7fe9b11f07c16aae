"""pithead.stratum.server: the asyncio shell of the pool.

`pool` (PoolServer and the per-connection Protocol; also the machine-facing shell of a farm proxy, which
gives it its own job source and share route), `stats`, `bans`, `tls` (stratum+ssl), `build` (a server from
the config), `workers` (the pool on several processes), `loop` (uvloop).
"""
