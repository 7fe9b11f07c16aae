"""pithead.stratum.v1: Stratum V1, sans-IO, both sides.

- `wire`: one wire layer for the pool and the client — line framing, message shapes (`Request`,
  `Response`), encoders and decoders, method names, V1's field decoders.
- `errors`: one error family — `StratumError` and its codes 20-25 (replies), `ProtocolViolation`
  (input that is no well-formed message, on either side), the client's own conditions.
- `pool`: the pool's per-connection session, one transition table (`TRANSITIONS`).
- `client`: the miner's (or a proxy's upstream) per-connection session, one transition table
  (`CLIENT_TRANSITIONS`).
- `jobs`: the pool's job book with pre-serialized notify lines; `work`: the client's jobs, work and shares.

What both versions judge alike sits below, in `pithead.stratum` (`share`, `difficulty`, `version`,
`extranonce`). No sockets, no clock, no asyncio: the shells are `pithead.stratum.server` and
`pithead.stratum.client`.
"""
