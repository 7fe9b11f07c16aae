"""pithead.miner: the reference miner.

- :mod:`.core`: the hashing core API (``scan``, ``prepare``, ``available_paths``, ``active_path``,
  ``set_path``) over the native extension ``_sha256d`` (x86 SHA-NI or portable C, chosen at run time)
  and the hashlib reference path.
- :mod:`.engine`: worker threads scanning Stratum work units and reporting hits.
- :mod:`.runner`: :class:`~pithead.miner.runner.Miner`, the Stratum client driving the engine.
- :mod:`.cli`: ``pithead miner``.

Not here: the Stratum protocol itself (:mod:`pithead.stratum.v1.client`, and its asyncio shell
:mod:`pithead.stratum.client`).
"""
