"""Bitcoin Core's JSON-RPC dialect for the embedded node: errors, the HTTP server, the methods."""
