"""The embedded node's typed RPC error, and the HTTP status Core sends with an error reply.

A method raises `RPCError(code, message)` with one of Core's codes (named once, in
`pithead.bitcoind.codes`); the server turns it into the `error` object, and for JSON-RPC 1.0 requests into
the HTTP status Core uses (httprpc.cpp JSONErrorReply: 400 for an invalid request, 404 for an unknown
method, 500 for everything else; JSON-RPC 2.0 requests always get 200).

This is the server's side. A client of a node (Core's or this one) reads errors through
`pithead.bitcoind.rpc.RpcError`, never through this class.
"""

from __future__ import annotations

from pithead.bitcoind.codes import (
    HTTP_BAD_REQUEST,
    HTTP_INTERNAL_SERVER_ERROR,
    HTTP_NOT_FOUND,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
)


class RPCError(Exception):
    """An error reply: Core's code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


def http_status_for(code: int) -> int:
    """The HTTP status Core sends with a JSON-RPC 1.0 error reply."""
    if code == RPC_INVALID_REQUEST:
        return HTTP_BAD_REQUEST
    if code == RPC_METHOD_NOT_FOUND:
        return HTTP_NOT_FOUND
    return HTTP_INTERNAL_SERVER_ERROR
