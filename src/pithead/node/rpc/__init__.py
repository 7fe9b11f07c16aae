"""Bitcoin Core's JSON-RPC dialect for the embedded node: errors, the HTTP server, the dispatcher and its
table (server.py), and the methods split as Core splits them (blockchain, mempool, mining,
rawtransactions, network, output_script, fees, control, zmqrpc, wallet)."""
