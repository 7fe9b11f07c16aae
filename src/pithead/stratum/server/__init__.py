"""pithead.stratum.server: the asyncio shell of the pool.

`pool` (PoolServer and the per-connection Protocol), `v2` (the Stratum V2 endpoint beside it: its own port,
the same jobs, share check, ledger events, bans and limits), `stats`, `bans`, `build` (a server from the
config), `workers` (the pool as several processes).
"""
