"""pithead.bitcoind: the one client of Bitcoin Core's JSON-RPC and its ZMQ notifications.

* `rpc`    `RpcClient` (`call(method, *params)`, `batch`, cookie re-read) and its typed failures;
* `codes`  Core's RPC error codes and HTTP statuses (`src/rpc/protocol.h`), named once;
* `zmq`    the `hashblock` subscriber.

Everything that talks to a node goes through here: the template sources, the ledger (maturity, payouts),
the web's node status, the app's start-up checks. Not here: the embedded node (`pithead.node`), which
serves this dialect and sits above this package.
"""
