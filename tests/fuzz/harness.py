"""The live targets and the strategies of the fuzz harness (see the package docstring).

Each target runs its server on an event loop of its own, in a background thread, so hypothesis drives it
from plain blocking sockets and HTTP: `LivePool` (a `PoolServer` on loopback over a static regtest
template, shares at a tiny difficulty) and `LiveNode` (an `EmbeddedNode`'s JSON-RPC). Each `try_*` method
sends one input and checks what must hold whatever the input:

- the pool: every reply is one JSON object per line, a result with `"error": null` or an error
  `[code 20..25, text, null]`; the connection ends with our closing ping answered, or closed by the server
  (a ban, an unframeable stream); nothing is logged with a traceback; the server keeps serving an honest
  miner connected beside the fuzzer from another address (its ping is answered and, every few inputs, a
  real share of its is accepted);
- the node: every answer is an HTTP status with a JSON-RPC body (`{result, error, id}`, or Core's 2.0
  shape when asked for 2.0; a batch: a list of them), never Core's internal error (-32603); nothing is logged with a traceback; the node keeps
  answering `getblockcount`.

A failed check raises `Finding` (an AssertionError: hypothesis shrinks it to a small input).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from hypothesis import strategies as st

from pithead.chain.compact import difficulty_to_target
from pithead.chain.params import REGTEST
from pithead.node.node import EmbeddedNode
from pithead.stratum.difficulty import VarDiffConfig
from pithead.stratum.server.pool import PoolServer, ServerLimits
from pithead.stratum.v1.pool import PoolRules
from pithead.stratum.v1.work import MinerWork, NotifiedJob
from pithead.template.sources.static import StaticTemplateSource
from stratum.helpers import SOLO_ADDRESS, find_nonces, regtest_template

T = TypeVar("T")

HARD = 0x1D00FFFF  # difficulty-1 network target: the fuzzer's shares at tiny difficulty are never blocks
USER = SOLO_ADDRESS + ".fuzz"
WAIT_S = 30.0
"""Bound on waiting for one answer (generous: the machine may be busy; a hung server fails, never hangs)."""
HONEST_SHARE_EVERY = 10
"""The honest miner submits a real share every this many inputs (and pings after every one)."""


class Finding(AssertionError):
    """Something that must hold did not (the message says what)."""


class _Tracebacks(logging.Handler):
    """Collects every log record that carries a traceback, or is an error, from pithead's loggers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def take(self) -> list[str]:
        out = [f"{r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "") for r in self.records]
        self.records.clear()
        return out


class _LoopThread:
    """An event loop in a daemon thread; `call` runs a coroutine there and waits for its result."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()


# --- the pool ----------------------------------------------------------------------------------------------


class _LineClient:
    """A blocking Stratum V1 connection from a chosen loopback address."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S, source_address=(source, 0))
        self._buf = b""
        self._ids = itertools.count(1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes | None:
        """The next line, or None when the server closed the connection."""
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except TimeoutError as exc:
                raise Finding(f"no answer from the pool in {WAIT_S:.0f} s") from exc
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def call(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Send a request and return its reply (notifications in between are skipped)."""
        rid = next(self._ids)
        self.send(orjson.dumps({"id": rid, "method": method, "params": params}) + b"\n")
        while True:
            line = self.line()
            if line is None:
                raise Finding(f"the pool closed the connection instead of answering {method}")
            msg = orjson.loads(line)
            if msg.get("id") == rid and "method" not in msg:
                return msg  # type: ignore[no-any-return]
            if msg.get("method") == "mining.notify":
                self.notify = msg["params"]
            elif msg.get("method") == "mining.set_difficulty":
                self.difficulty = float(msg["params"][0])

    def handshake(self, user: str = USER, password: str = "x") -> None:
        self.notify: list[Any] | None = None
        self.difficulty = 1.0
        r = self.call("mining.configure", [["version-rolling"], {"version-rolling.mask": "1fffe000"}])
        self.mask = int(r["result"]["version-rolling.mask"], 16)
        r = self.call("mining.subscribe", ["pithead-fuzz/1"])
        self.extranonce1, self.extranonce2_size = bytes.fromhex(r["result"][1]), r["result"][2]
        r = self.call("mining.authorize", [user, password])
        if r["result"] is not True:
            raise Finding(f"the honest authorize was refused: {r}")
        while self.notify is None:  # set_difficulty then the job follow the authorize reply
            line = self.line()
            if line is None:
                raise Finding("the pool closed a fresh connection")
            msg = orjson.loads(line)
            if msg.get("method") == "mining.notify":
                self.notify = msg["params"]
            elif msg.get("method") == "mining.set_difficulty":
                self.difficulty = float(msg["params"][0])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _check_reply(line: bytes) -> None:
    try:
        msg = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise Finding(f"the pool sent a line that is not JSON: {line[:200]!r}") from exc
    if not isinstance(msg, dict):
        raise Finding(f"the pool sent a JSON value that is no object: {line[:200]!r}")
    if "method" in msg:
        return  # a notification of ours (notify, set_difficulty, show_message ...)
    if not {"id", "result", "error"} <= set(msg) <= {"id", "result", "error", "reject-reason"}:
        raise Finding(f"a reply not of id/result/error (and a share's reject-reason): {msg}")
    err = msg["error"]
    if err is not None and not (isinstance(err, list) and len(err) == 3 and err[0] in range(20, 26)
                                and isinstance(err[1], str) and err[2] is None):
        raise Finding(f"an error not in Stratum's [code 20..25, text, null] shape: {msg}")


class LivePool:
    """A live pool server for the fuzzer, and an honest miner beside it."""

    def __init__(self) -> None:
        self.inputs = 0
        self._loop = _LoopThread("fuzz-pool")
        self._log = _Tracebacks()
        logging.getLogger("pithead").addHandler(self._log)
        self.source = StaticTemplateSource(regtest_template(bits=HARD))
        rules = PoolRules(mode="solo", network=REGTEST, vardiff=VarDiffConfig(10.0, 1e-6, 1e9),
                          start_difficulty=1e-5)
        # the fuzzer connects from a new loopback address for each input, so one input's ban is not the next's
        self.server = PoolServer(rules=rules, source=self.source, limits=ServerLimits(ban_seconds=3600.0),
                                 refresh_interval=3600.0)
        _, self.port = self._loop.call(self.server.start("127.0.0.1", 0))
        self._sources = (f"127.{a}.{b}.{c}" for a in itertools.cycle(range(1, 255)) for b in range(256)
                         for c in range(1, 255))
        self.honest = _LineClient(self.port, "127.0.0.1")
        # a fixed difficulty (`d=`): vardiff would raise it after a few quick shares and make them slow to find
        self.honest.handshake(SOLO_ADDRESS + ".honest", "d=0.00001")
        self._honest_en2 = itertools.count()  # never the same extranonce2 twice: no duplicate shares

    def close(self) -> None:
        self.honest.close()
        logging.getLogger("pithead").removeHandler(self._log)
        with contextlib.suppress(Exception):
            self._loop.call(self.server.stop())
        self._loop.close()

    # --- one input each ------------------------------------------------------------------------------
    def try_lines(self, lines: list[bytes], handshake: bool = False) -> None:
        """Send `lines` (raw: anything but a newline) on a fresh connection, then a closing ping; check
        every reply, the log and the honest miner."""
        self.inputs += 1
        c = _LineClient(self.port, next(self._sources))
        try:
            if handshake:
                c.handshake()
            with contextlib.suppress(OSError):  # the server may close (ban) while we still write
                c.send(b"".join(x + b"\n" for x in lines) + b'{"id":"end","method":"mining.ping","params":[]}\n')
            while True:
                line = c.line()
                if line is None:
                    break  # closed by the server: a ban or an unframeable stream
                _check_reply(line)
                if orjson.loads(line).get("id") == "end":
                    break
        finally:
            c.close()
        self._after()

    def try_requests(self, requests: list[dict[str, Any]], handshake: bool = False) -> None:
        self.try_lines([dumps(r) for r in requests], handshake)

    def try_submits(self, fields: list[tuple[Any, Any, Any, Any, Any]]) -> None:
        """Submits on the live job: each (job id, extranonce2, ntime, nonce, version bits) — None takes the
        live job's own value (or leaves the version bits out), anything else is sent as drawn."""
        self.inputs += 1
        c = _LineClient(self.port, next(self._sources))
        try:
            c.handshake()
            assert c.notify is not None
            live = [c.notify[0], "00" * c.extranonce2_size, c.notify[7], "00000000"]
            for i, f in enumerate(fields):
                params = [USER] + [live[k] if f[k] is None else f[k] for k in range(4)]
                if f[4] is not None:
                    params.append(f[4])
                with contextlib.suppress(OSError):
                    c.send(dumps({"id": i, "method": "mining.submit", "params": params}) + b"\n")
                line = self._reply_to(c, i)
                if line is None:
                    break
        finally:
            c.close()
        self._after()

    @staticmethod
    def _reply_to(c: _LineClient, rid: int) -> bytes | None:
        while True:
            line = c.line()
            if line is None:
                return None
            _check_reply(line)
            msg = orjson.loads(line)
            # a line that is not JSON (Infinity, say) is answered without its id: {"id": null, "error": ...}
            if "method" not in msg and (msg.get("id") == rid or (msg.get("id") is None and msg.get("error"))):
                return line

    # --- what must hold after every input ---------------------------------------------------------------
    def _after(self) -> None:
        logged = self._log.take()
        if logged:
            raise Finding("the pool logged an error or a traceback: " + "; ".join(logged[:3]))
        r = self.honest.call("mining.ping", [])
        if r.get("result") != "pong":
            raise Finding(f"the honest miner's ping got {r}")
        if self.inputs % HONEST_SHARE_EVERY == 0:
            self._honest_share()

    def _honest_share(self) -> None:
        h = self.honest
        assert h.notify is not None
        work = MinerWork(NotifiedJob.from_notify(h.notify), h.extranonce1, h.extranonce2_size, h.difficulty, h.mask)
        target = difficulty_to_target(h.difficulty)
        for en2 in self._honest_en2:
            unit = work.unit(en2 % (256 ** h.extranonce2_size))
            found = find_nonces(unit.header76, target, 1, limit=1 << 20)
            if found:
                break
        r = self.honest.call("mining.submit", unit.share(found[0]).submit_params(SOLO_ADDRESS + ".honest"))
        if r.get("result") is not True:
            raise Finding(f"the honest miner's valid share was not accepted: {r}")


# --- the node ----------------------------------------------------------------------------------------------

NODE_METHODS = sorted({
    "abandontransaction", "decoderawtransaction", "decodescript", "estimatesmartfee", "getaddressinfo",
    "getbalance", "getbestblockhash", "getblock", "getblockchaininfo", "getblockcount", "getblockhash",
    "getblockheader", "getblocktemplate", "getchaintips", "getconnectioncount", "getdifficulty",
    "getmempoolentry", "getmempoolinfo", "getmininginfo", "getnetworkhashps", "getnetworkinfo",
    "getnewaddress", "getpeerinfo", "getrawmempool", "getrawtransaction", "getrpcinfo", "gettransaction",
    "gettxoutsetinfo", "getwalletinfo", "getzmqnotifications", "listtransactions", "listunspent",
    "listwallets", "preciousblock", "sendmany", "sendrawtransaction", "sendtoaddress", "submitblock",
    "submitheader", "uptime", "validateaddress", "walletlock", "walletpassphrase", "nosuchmethod",
})
"""Every method of the node's table but those whose valid random input would stop it or mine (stop,
generate*), plus one that does not exist."""
INTERNAL_ERROR = -32603


class LiveNode:
    """A live embedded node (regtest, a fresh data directory) for the fuzzer."""

    def __init__(self) -> None:
        self.inputs = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="pithead-fuzz-node-")
        self._loop = _LoopThread("fuzz-node")
        self._log = _Tracebacks()
        logging.getLogger("pithead").addHandler(self._log)
        self.node = EmbeddedNode(Path(self._tmp.name), rpc_port=0)
        self._loop.call(self.node.start())
        self.http = httpx.Client(auth=self.node.auth, timeout=WAIT_S)
        self.height = self._call("getblockcount")

    def close(self) -> None:
        self.http.close()
        logging.getLogger("pithead").removeHandler(self._log)
        with contextlib.suppress(Exception):
            self._loop.call(self.node.stop())
        self._loop.close()
        self._tmp.cleanup()

    def _call(self, method: str) -> Any:
        r = self.http.post(self.node.rpc_url, content=orjson.dumps({"id": 0, "method": method, "params": []}))
        body = r.json()
        if body.get("error") is not None:
            raise Finding(f"{method} failed: {body}")
        return body["result"]

    def try_body(self, body: bytes, path: str = "/") -> None:
        """POST `body` (authenticated) and check the answer, the log and that the node still answers."""
        self.inputs += 1
        try:
            r = self.http.post(self.node.rpc_url + path, content=body)
        except httpx.HTTPError as exc:
            raise Finding(f"the node's HTTP server failed the request: {exc!r}") from exc
        if r.status_code not in (200, 204, 400, 403, 404, 405, 413, 500):
            raise Finding(f"HTTP {r.status_code} for {body[:200]!r}")
        if r.headers.get("content-type", "").startswith("application/json"):
            try:
                answer = r.json()
            except ValueError as exc:
                raise Finding(f"a JSON answer that does not parse: {r.content[:200]!r}") from exc
            for one in answer if isinstance(answer, list) else [answer]:
                # JSON-RPC 1.0 (result, error, id) or, asked for 2.0, Core's 2.0 shape (result or error)
                if (not isinstance(one, dict) or "id" not in one or not set(one) <= {"jsonrpc", "result", "error", "id"}
                        or not ("result" in one or "error" in one)):
                    raise Finding(f"an answer that is no JSON-RPC reply: {one!r:.200}")
                err = one.get("error")
                if err is not None and (not isinstance(err, dict) or not isinstance(err.get("code"), int)
                                        or err["code"] == INTERNAL_ERROR or not isinstance(err.get("message"), str)):
                    raise Finding(f"an internal or malformed error for {body[:200]!r}: {err}")
        elif r.status_code == 200:
            raise Finding(f"a 200 answer that is not JSON: {r.content[:200]!r}")
        logged = self._log.take()
        if logged:
            raise Finding("the node logged an error or a traceback: " + "; ".join(logged[:3]))
        if self._call("getblockcount") != self.height:  # nothing above mines: the height stays
            raise Finding("the node's height changed")

    def try_request(self, request: object) -> None:
        self.try_body(dumps(request))


# --- strategies ----------------------------------------------------------------------------------------------


def dumps(value: object) -> bytes:
    """JSON text of a drawn value (the standard library's: it writes integers of any size, and Infinity,
    which a peer must refuse like any other bad JSON)."""
    return json.dumps(value).encode()


LAX_HEX = st.sampled_from(["-1", "+1", "0x1", " 1", "1_0", "-0", "0X1", "\u0661", "1 ", "ffffffff0", "", "g"])
"""What Python's own hex parsers would take, or nearly: the forms a hex field must refuse."""

json_leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
             | st.text(max_size=40) | LAX_HEX)
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)

hex_fields = st.one_of(
    st.none(),  # the live job's own value
    st.text(alphabet="0123456789abcdefABCDEF", max_size=18),
    st.text(alphabet="0123456789abcdefxX+-_ \t", max_size=10),
    LAX_HEX,
    json_values,
)
submit_fields = st.tuples(hex_fields, hex_fields, hex_fields, hex_fields, hex_fields)

POOL_METHODS = ["mining.configure", "mining.subscribe", "mining.authorize", "mining.suggest_difficulty",
                "mining.extranonce.subscribe", "mining.submit", "mining.ping", "client.get_version",
                "mining.get_transactions", "mining.multi_version", "mining.nonsense"]
stratum_requests = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-(2**63), 2**63), st.text(max_size=70), st.none(), json_values),
     "method": st.one_of(st.sampled_from(POOL_METHODS), st.text(max_size=70), json_values)},
    optional={"params": st.one_of(st.lists(json_values, max_size=7), json_values)},
)
junk_lines = st.lists(
    st.one_of(
        st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
        st.text(max_size=200).map(lambda t: t.replace("\n", "").encode()),
        json_values.map(dumps),
        st.integers(16 * 1024 + 1, 20_000).map(lambda n: b"x" * n),  # longer than a line may be
    ),
    max_size=12,
)

node_requests = st.fixed_dictionaries(
    {"method": st.one_of(st.sampled_from(NODE_METHODS), st.text(max_size=30)),
     "id": st.one_of(st.integers(-(2**63), 2**63), st.text(max_size=20), st.none())},
    optional={"params": st.one_of(st.lists(json_values, max_size=5),
                                  st.dictionaries(st.text(max_size=12), json_values, max_size=4), json_values),
              "jsonrpc": st.sampled_from(["1.0", "2.0", "3"])},
)
node_bodies = st.one_of(
    node_requests.map(dumps),
    st.lists(node_requests, max_size=4).map(dumps),  # a batch
    st.binary(max_size=300),
    json_values.map(dumps),
)
node_paths = st.sampled_from(["/", "/", "/", "/wallet/", "/wallet/nosuch", "/wallet/%00", "/x", "//"])
