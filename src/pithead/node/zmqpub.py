"""ZMQ publishers like Bitcoin Core's -zmqpubhashblock / -zmqpubrawblock / -zmqpubhashtx / -zmqpubrawtx.

Each message has three frames, exactly as Core's zmq/zmqpublishnotifier.cpp sends them: the topic
("hashblock", "rawblock", "hashtx", "rawtx"), the body (a hash in display byte order, or the serialized
block/transaction), and a 4-byte little-endian sequence number counted per topic from 0. Several topics
may share one address (one PUB socket), as in Core. A PUB socket never blocks: a slow subscriber loses
messages beyond the high-water mark, as with Core. Port 0 in an address means "pick a free port"; the
bound addresses are in `endpoints`. As in Core, hashblock/rawblock fire once per new tip (not for each
block of a reorganisation), and hashtx/rawtx for each transaction entering the mempool or a connected block.
"""

from __future__ import annotations

import zmq

from pithead.chain.block import Block
from pithead.chain.hashes import display_hex
from pithead.chain.tx import Transaction

TOPICS = ("hashblock", "rawblock", "hashtx", "rawtx")
SEND_HWM = 1000  # Core's -zmqpub*hwm default


class ZmqPublisher:
    def __init__(self, addresses: dict[str, str]) -> None:
        unknown = set(addresses) - set(TOPICS)
        if unknown:
            raise ValueError(f"unknown ZMQ topics {sorted(unknown)}")
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self.endpoints: dict[str, str] = {}
        by_address: dict[str, zmq.Socket[bytes]] = {}
        for topic, address in addresses.items():
            sock = by_address.get(address)
            if sock is None:
                sock = self._ctx.socket(zmq.PUB)
                sock.setsockopt(zmq.SNDHWM, SEND_HWM)
                sock.setsockopt(zmq.LINGER, 0)
                bind = address[:-2] + ":*" if address.endswith(":0") else address
                sock.bind(bind)
                by_address[address] = sock
            self._sockets[topic] = sock
            self.endpoints[topic] = str(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        self._seq = dict.fromkeys(TOPICS, 0)

    def _send(self, topic: str, body: bytes) -> None:
        sock = self._sockets.get(topic)
        if sock is None:
            return
        seq = self._seq[topic]
        self._seq[topic] = (seq + 1) & 0xFFFFFFFF
        try:
            sock.send_multipart([topic.encode(), body, seq.to_bytes(4, "little")], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # no room: dropped, as a PUB socket does at its high-water mark

    def block(self, block: Block) -> None:
        self._send("hashblock", bytes.fromhex(display_hex(block.hash())))
        self._send("rawblock", block.serialize())

    def transaction(self, tx: Transaction) -> None:
        self._send("hashtx", bytes.fromhex(tx.txid_hex()))
        self._send("rawtx", tx.serialize())

    def close(self) -> None:
        for sock in set(self._sockets.values()):
            sock.close(linger=0)
        self._sockets.clear()
