"""pithead.stratum.v1: Stratum V1, sans-IO.

`codec` (newline-delimited JSON-RPC), `errors` (codes 20-25), `session` (the per-connection state machine
and its transition table), `extranonce`, `version` (BIP310 rolling), `difficulty` (vardiff), `share` (the
share check), `jobs` (the job book with pre-serialized notify lines). No sockets, no clock, no asyncio:
the shell is `pithead.stratum.server`.
"""
