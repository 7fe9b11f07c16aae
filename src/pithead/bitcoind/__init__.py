"""pithead.bitcoind: the one client of Bitcoin Core's JSON-RPC and its ZMQ notifications."""
