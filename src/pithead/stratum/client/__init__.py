"""pithead.stratum.client: the asyncio shells of Stratum V1 client connections.

- :mod:`.connection`: :class:`~.connection.StratumClient`, one connection at a time to the first working
  pool of a list, failover and backoff, over the sans-IO :class:`~pithead.stratum.v1.client.ClientSession`
  (the protocol, its transition table and the work it hands out live in :mod:`pithead.stratum.v1`).

Not here: the pool side (:mod:`pithead.stratum.server`) and hashing (:mod:`pithead.miner`).
"""
