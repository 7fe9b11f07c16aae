"""The simulated fleet (`pithead farm sim`): thousands of miners on loopback addresses, one process.

- `models`: realistic device figures (S19, S19 XP, S21, M30S, M50, Bitaxe Max/Ultra/Supra/Gamma), how
  each family behaves, and failure rates.
- `clock`: simulated time and the counter-based seeded randomness that makes runs replayable.
- `device`: one device's compact state, advanced lazily; `Snapshot` is what its firmware reports.
- `fleet`: devices laid out on 127.x.y.z addresses, time-stamped operator actions, replay.
- `surfaces`: snapshots → vendor payloads, one module per surface (Antminer cgminer API, Antminer web
  CGI, Whatsminer btminer API, AxeOS; via `pithead.farm.protocol`), and which family serves which.
- `http`: a small sans-IO HTTP/1.1 codec and server-side Digest auth.
- `server`: the asyncio listeners (one socket per port, dispatch on destination address).
- `mining`: a fraction of devices mining for real through pithead's Stratum client and hashing core.
(The Typer app mounted as `pithead farm sim` is `pithead.cli.fleetsim`.)

The simulator depends on nothing in pithead but `pithead.farm.protocol` and, for mining only,
`pithead.stratum.client` and `pithead.miner.core`.
"""
