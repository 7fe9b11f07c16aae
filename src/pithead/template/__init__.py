"""pithead.template: work from Bitcoin nodes.

- `block_template`: the frozen `BlockTemplate` and `parse_gbt`, which validates a getblocktemplate answer;
- `interface`: the `TemplateSource` protocol the pool consumes (`TemplateUpdate`, `SubmitResult`), and
  `judge_submission`, which tells a found block from one on a stale fork;
- `job`: the pure translation of a template into Stratum work, and of a winning share into a block;
- `sources`: `NodeSource` (one node: ZMQ, long-poll, polling, refresh), `FailoverSource` (several nodes;
  the leader follows the chain, priority decides between nodes on the same tip: `sources.leader`) and
  `source_from_config`, the fan-out to many consumers, and a static source for tests.

Not here: the node client and the ZMQ subscriber the sources use (`pithead.bitcoind`).
"""
