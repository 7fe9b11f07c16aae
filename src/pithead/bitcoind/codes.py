"""Bitcoin Core's JSON-RPC error codes and HTTP statuses, named once (Core's `src/rpc/protocol.h`).

Every part of pithead that sets or compares a code uses these names: the client (`pithead.bitcoind.rpc`,
which raises `NodeWarmingUpError` for `RPC_IN_WARMUP`), the embedded node's server side
(`pithead.node.rpc`), the ledger's maturity tracker and payouts. Each name is Core's own, with its
number, so a code read in a log or a test can be looked up here and in Core's source alike.

Only what pithead answers or acts on is here, plus the few codes that help read the rest (wallet and
peer-to-peer codes a Bitcoin Core node may answer). This module holds no behaviour: which codes mean
"nothing was sent" to the payouts is the payouts' decision (`pithead.ledger.payouts`).
"""

from __future__ import annotations

# --- Standard JSON-RPC 2.0 errors (protocol.h RPCErrorCode, first block) --------------------------------
RPC_INVALID_REQUEST = -32600  # RPC_INVALID_REQUEST: answered with HTTP 400 (httprpc.cpp JSONErrorReply)
RPC_METHOD_NOT_FOUND = -32601  # RPC_METHOD_NOT_FOUND: answered with HTTP 404
RPC_INVALID_PARAMS = -32602  # RPC_INVALID_PARAMS
RPC_INTERNAL_ERROR = -32603  # RPC_INTERNAL_ERROR: a genuine error in the node (Core: datadir corruption)
RPC_PARSE_ERROR = -32700  # RPC_PARSE_ERROR: the request body is not JSON

# --- General application errors ------------------------------------------------------------------------
RPC_MISC_ERROR = -1  # RPC_MISC_ERROR: std::exception thrown in command handling
RPC_TYPE_ERROR = -3  # RPC_TYPE_ERROR: unexpected type passed as a parameter
RPC_INVALID_ADDRESS_OR_KEY = -5  # RPC_INVALID_ADDRESS_OR_KEY: also "Block not found", unknown txid
RPC_OUT_OF_MEMORY = -7  # RPC_OUT_OF_MEMORY: ran out of memory during the operation
RPC_INVALID_PARAMETER = -8  # RPC_INVALID_PARAMETER: invalid, missing or duplicate (e.g. height out of range)
RPC_DATABASE_ERROR = -20  # RPC_DATABASE_ERROR
RPC_DESERIALIZATION_ERROR = -22  # RPC_DESERIALIZATION_ERROR: raw transaction or block does not decode
RPC_VERIFY_ERROR = -25  # RPC_VERIFY_ERROR: general error in transaction or block submission
RPC_VERIFY_REJECTED = -26  # RPC_VERIFY_REJECTED: rejected by network rules (mempool policy, consensus)
RPC_VERIFY_ALREADY_IN_CHAIN = -27  # RPC_VERIFY_ALREADY_IN_CHAIN: transaction already in the chain
RPC_IN_WARMUP = -28  # RPC_IN_WARMUP: the node is still starting (loading the block index, verifying)
RPC_METHOD_DEPRECATED = -32  # RPC_METHOD_DEPRECATED

# --- Peer-to-peer client errors (a node with no peers, or still syncing) ---------------------------------
RPC_CLIENT_NOT_CONNECTED = -9  # RPC_CLIENT_NOT_CONNECTED: getblocktemplate on a node without peers
RPC_CLIENT_IN_INITIAL_DOWNLOAD = -10  # RPC_CLIENT_IN_INITIAL_DOWNLOAD: getblocktemplate while syncing

# --- Wallet errors ----------------------------------------------------------------------------------------
RPC_WALLET_ERROR = -4  # RPC_WALLET_ERROR: unspecified wallet problem ("Transaction too large", fees)
RPC_WALLET_INSUFFICIENT_FUNDS = -6  # RPC_WALLET_INSUFFICIENT_FUNDS
RPC_WALLET_UNLOCK_NEEDED = -13  # RPC_WALLET_UNLOCK_NEEDED: walletpassphrase first
RPC_WALLET_PASSPHRASE_INCORRECT = -14  # RPC_WALLET_PASSPHRASE_INCORRECT
RPC_WALLET_WRONG_ENC_STATE = -15  # RPC_WALLET_WRONG_ENC_STATE
RPC_WALLET_ENCRYPTION_FAILED = -16  # RPC_WALLET_ENCRYPTION_FAILED
RPC_WALLET_ALREADY_UNLOCKED = -17  # RPC_WALLET_ALREADY_UNLOCKED
RPC_WALLET_NOT_FOUND = -18  # RPC_WALLET_NOT_FOUND: no such wallet (or none loaded)
RPC_WALLET_NOT_SPECIFIED = -19  # RPC_WALLET_NOT_SPECIFIED: several wallets loaded and none named
RPC_WALLET_ALREADY_LOADED = -35  # RPC_WALLET_ALREADY_LOADED
RPC_WALLET_ALREADY_EXISTS = -36  # RPC_WALLET_ALREADY_EXISTS

# --- HTTP statuses (protocol.h HTTPStatusCode) ------------------------------------------------------------
HTTP_OK = 200  # HTTP_OK
HTTP_NO_CONTENT = 204  # HTTP_NO_CONTENT: a JSON-RPC 2.0 notification (a request without id)
HTTP_BAD_REQUEST = 400  # HTTP_BAD_REQUEST
HTTP_UNAUTHORIZED = 401  # HTTP_UNAUTHORIZED: wrong user/password, or a cookie from before a restart
HTTP_FORBIDDEN = 403  # HTTP_FORBIDDEN: -rpcwhitelist refused the method
HTTP_NOT_FOUND = 404  # HTTP_NOT_FOUND
HTTP_BAD_METHOD = 405  # HTTP_BAD_METHOD: anything but POST
HTTP_INTERNAL_SERVER_ERROR = 500  # HTTP_INTERNAL_SERVER_ERROR: a JSON-RPC 1.0 error reply
HTTP_SERVICE_UNAVAILABLE = 503  # HTTP_SERVICE_UNAVAILABLE: work queue full
