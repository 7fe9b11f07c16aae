"""pithead.template: work from Bitcoin nodes.

- `block_template`: the frozen `BlockTemplate` and `parse_gbt`, which validates a getblocktemplate answer;
- `interface`: the `TemplateSource` protocol the pool consumes (`TemplateUpdate`, `SubmitResult`);
- `rpc`: an async JSON-RPC client for Bitcoin Core (cookie or user/password, typed errors);
- `zmqsub`: a subscriber for Core's `-zmqpubhashblock`;
- `source`: `NodeSource` (one node: ZMQ, long-poll, polling, refresh) and `FailoverSource` (several nodes
  with priorities), and `source_from_config`.
"""
