"""pithead.stratum.server: the asyncio shell of the pool.

`pool` (PoolServer and the per-connection Protocol), `stats`, `bans`, `static_source` (a hand-fed
TemplateSource for benchmarks and tests), `run` (wiring from the config), `cli` (`pithead pool`).
"""
