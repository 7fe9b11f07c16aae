"""pithead.stratum.client: the miner side of Stratum V1.

- :mod:`.work` (pure): notify → Job → Work → header units; hits → submit params; version/extranonce2/ntime
  rolling.
- :mod:`.session` (sans-IO): one connection's protocol state; bytes in, events out, bytes to send.
- :mod:`.connection` (asyncio): :class:`StratumClient`, failover across pools with backoff.

Not here: the pool side (:mod:`pithead.stratum.server`) and hashing (:mod:`pithead.miner`).
"""
