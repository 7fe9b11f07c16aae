"""pithead.stratum.v2.messages: every Stratum V2 message this layer speaks, one frozen dataclass each.

- `base`: `Message`, the `message(...)` decorator that reads a class's field types into its codec table,
  `Subprotocol`.
- `common`: SetupConnection(.Success/.Error), ChannelEndpointChanged, Reconnect; the protocol version and
  the SetupConnection flags.
- `extensions`: RequestExtensions(.Success/.Error) (extension 0x0001).
- `mining`: every Mining message of the pinned spec snapshot (0x10-0x25), the SRI error codes.
- `registry`: (extension, type) → class; `encode_frame` and `decode_frame`.

Job Declaration and Template Distribution join as `job_declaration` and `template_distribution` in later
steps: the registry knows their type ranges already.
"""
