"""pithead.stratum.client: the asyncio shells of Stratum client connections.

- :mod:`.connection`: :class:`~.connection.StratumClient`, one connection at a time to the first working
  pool of a list, failover and backoff, over the sans-IO :class:`~pithead.stratum.v1.client.ClientSession`
  (the protocol, its transition table and the work it hands out live in :mod:`pithead.stratum.v1`).
- :mod:`.v2`: :class:`~.v2.Sv2Client`, the same over Stratum V2 (pools pinned by their authority key), over
  :class:`~pithead.stratum.v2.client.MinerConnection`; it hands the miner the same work and events.

Not here: the pool side (:mod:`pithead.stratum.server`) and hashing (:mod:`pithead.miner`).
"""
