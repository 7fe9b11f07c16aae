"""pithead.stratum.v2: Stratum V2, sans-IO (spec `stratum-mining/sv2-spec@0f38d51`, interop with SRI).

- `types`: the data types (U8…U256, STR0_255, B0_*, SEQ0_*, OPTION, BOOL, F32, PUBKEY, SIGNATURE) as codecs.
- `framing`: the 6-byte frame header with the channel-message bit; `FrameReader` for unencrypted streams.
- `messages`: every Common and Mining message (and extension negotiation), a registry, frames ↔ messages.
- `tlv`: TLV extension fields (little-endian, as SRI), extension 0x0002's user_identity.
- `noise`: the Noise NX handshake (ElligatorSwift keys, BIP324 ECDH) for each role as a state machine,
  and the ChaCha20-Poly1305 transport with SV2's frame chunking.
- `cert`: the pool's certificate (BIP340 by the authority key, validity dates) and the authority key's
  base58check encoding.
- `secp256k1`: the one module that touches libsecp256k1 (coincurve, partly through its private cffi
  module): ElligatorSwift, BIP324 ECDH, BIP340.
- `channels`: the pool side of one mining channel (standard or extended) and its transition table: work
  per channel kind, future jobs and SetNewPrevHash, shares judged by `stratum.share`, targets and vardiff.
- `pool`: the pool side of one connection and its transition table: the Noise responder, SetupConnection,
  opening channels, routing channel messages, the misbehaviour score.
- `client`: the miner side of one connection and its transition table: the Noise initiator checking the
  pool's certificate, one channel, jobs made mineable, shares and their acknowledgements.
- `errors`: the typed errors of all of the above.

No sockets, no clock, no asyncio: time comes in as a parameter (`now`), randomness may (for
reproducible transcripts). The asyncio shells are `pithead.stratum.server` and `pithead.stratum.client`.
"""
