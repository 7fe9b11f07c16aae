"""pithead.stratum.server: the asyncio shell of the pool.

`pool` (PoolServer and the per-connection Protocol; also the machine-facing shell of a farm proxy, which
gives it its own job source and share route), `v2` (the Stratum V2 endpoint beside it: its own port, the
same jobs, share check, ledger events, bans and limits), `stats`, `bans`, `tls` (stratum+ssl), `build` (a
server from the config), `workers` (the pool on several processes), `loop` (uvloop).
"""
