"""Per-IP admission: temporary bans for flooders and a cap on connections per IP (pure, time passed in).

What it is: `BanTable`, the bans (bounded in number, each ban and each check O(log n) at most),
`AddressScores`, the misbehaviour score of each ban key summed over all its connections (what bans an
address that spreads its junk over many connections, each below a connection's own ban score), and
`Admission`, which refuses a banned address, caps the connections of one address and keeps those scores. `ban_key` says what
a ban covers: an IPv4 address; an IPv6 address's prefix (/64 by default, `[pool] ban_ipv6_prefix`),
since one IPv6 host usually holds a whole /64 and could otherwise take a fresh address for every
connection; an IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, what a dual-stack socket reports for an IPv4
peer) as the IPv4 address it is. The pool's worker supervisor keeps a `BanTable` too, to hand the bans in
force to a worker it restarts. What it is not: a firewall; the refused connection was already accepted
by the kernel.
"""

from __future__ import annotations

import heapq
import ipaddress
import socket
from collections import Counter, OrderedDict
from collections.abc import Iterator

DEFAULT_BAN_SECONDS = 600.0
"""How long a flooder of junk or invalid shares is refused: long enough to stop a loop, short enough that a
misconfigured honest rig recovers after it is fixed."""
MAX_BANNED = 100_000
"""Bound on remembered bans; the earliest-expiring are forgotten first (a flood of more distinct
addresses than this is a job for a firewall: the table stays bounded and cheap either way)."""
DEFAULT_IPV6_PREFIX = 64
"""IPv6 bans cover this prefix: a /64 is what one site or host is given (RFC 6177), so a host cannot step
round its ban by taking another address of its own subnet."""
ADDRESS_BAN_SCORE = 300.0
"""Misbehaviour score, summed over every connection of one ban key, at which the key is banned: three
times a connection's own (`pithead.stratum.v1.pool.BAN_SCORE`), so an address that opens many connections
and spends less than a connection's ban on each is banned all the same."""
ADDRESS_SCORE_PER_CONNECTION = 10.0
"""What each open connection of a key adds to its ban score: a farm of N miners behind one NAT may
misbehave a little on each connection at once (after a pool restart each reconnecting miner sends a share
or two of work from before it, for job ids the new connection was never sent) and is not banned for it,
while an address that churns through connections, or holds them and sends junk on all, still is."""
ADDRESS_SCORE_DECAY_PER_SECOND = 1.0
"""Score forgiven per key per second, as for one connection: a NAT's odd reject never adds up; a flood does."""
MAX_SCORED_ADDRESSES = 100_000
"""Keys whose score is remembered; the least recently penalised are forgotten first (their score is lost:
a flood of more distinct addresses than this is a job for a firewall)."""


def ban_key(ip: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """What a ban of `ip` covers, as text: the IPv4 address itself (an IPv4-mapped IPv6 address counts as
    its IPv4 address), or the IPv6 network of `ipv6_prefix` bits around it (``2001:db8::/64``). A key given
    back (a network) gives itself; text that is no address (a Unix socket's peer) is its own key."""
    if ":" not in ip:
        return ip  # IPv4 (or no address at all): the common case, without parsing
    try:  # inet_pton: a few µs, where the ipaddress module takes ~40
        n = int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
    except OSError:  # a network given back, a scope id ("fe80::1%eth0"), or junk
        try:
            net = ipaddress.ip_network(ip.partition("%")[0], strict=False)
        except ValueError:
            return ip
        if not isinstance(net, ipaddress.IPv6Network):
            return str(net.network_address)
        n, ipv6_prefix = int(net.network_address), min(ipv6_prefix, net.prefixlen)
    if n >> 32 == 0xFFFF:  # ::ffff:a.b.c.d
        return socket.inet_ntop(socket.AF_INET, (n & 0xFFFFFFFF).to_bytes(4, "big"))
    shift = 128 - ipv6_prefix
    text = socket.inet_ntop(socket.AF_INET6, (n >> shift << shift).to_bytes(16, "big"))
    if "." in text:  # inet_ntop writes some networks with a dotted tail ("::1.2.3.0"); one spelling only
        text = str(ipaddress.IPv6Address(n >> shift << shift))
    return f"{text}/{ipv6_prefix}"


def host_key(ip: str) -> str:
    """The address one host connects from: an IPv4-mapped IPv6 address as its IPv4 address, else `ip`."""
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


class BanTable:
    """Bans by `ban_key`, each until a time; at most `max_banned`, the earliest-expiring forgotten first.

    A dict (key → end) answers "is it banned"; a heap of (end, key) finds the next to expire or to evict.
    An entry is changed by pushing a new one: the heap's old entry (whose end no longer matches the dict)
    is skipped when it comes to the top, and the heap is rebuilt from the dict when stale entries make up
    half of it, so it stays within 2 × `max_banned` and each ban costs O(log n), amortised."""

    def __init__(self, max_banned: int = MAX_BANNED, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> None:
        if max_banned < 1:
            raise ValueError("a ban table holds at least one ban")
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError(f"an IPv6 prefix is 1..128 bits, not {ipv6_prefix}")
        self.max_banned = max_banned
        self.ipv6_prefix = ipv6_prefix
        self._until: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._until)

    def key(self, ip: str) -> str:
        return ban_key(ip, self.ipv6_prefix)

    def ban(self, ip: str, until: float, now: float) -> None:
        """Ban `ip`'s key until `until`; a longer ban in force is kept."""
        key = self.key(ip)
        self._expire(now)
        old = self._until.get(key)
        if old is not None and old >= until:
            return
        if old is None and len(self._until) >= self.max_banned:
            self._evict()
        self._until[key] = until
        heapq.heappush(self._heap, (until, key))
        if len(self._heap) > 2 * len(self._until) + 16:  # mostly stale entries: rebuild, O(n) once per n pushes
            self._heap = [(end, k) for k, end in self._until.items()]
            heapq.heapify(self._heap)

    def until(self, ip: str, now: float) -> float | None:
        """When `ip`'s ban ends, or None if it is not banned at `now`."""
        key = self.key(ip)
        end = self._until.get(key)
        if end is None:
            return None
        if now >= end:
            del self._until[key]  # its heap entry is now stale and is dropped when it surfaces
            return None
        return end

    def is_banned(self, ip: str, now: float) -> bool:
        return self.until(ip, now) is not None

    def active(self, now: float) -> Iterator[tuple[str, float]]:
        """(key, seconds left) of every ban in force at `now`."""
        self._expire(now)
        for key, end in self._until.items():
            if end > now:
                yield key, end - now

    def _expire(self, now: float) -> None:
        heap, until = self._heap, self._until
        while heap and heap[0][0] <= now:
            end, key = heapq.heappop(heap)
            if until.get(key) == end:
                del until[key]

    def _evict(self) -> None:
        """Forget the ban that ends first (skipping stale heap entries)."""
        heap, until = self._heap, self._until
        while heap:
            end, key = heapq.heappop(heap)
            if until.get(key) == end:
                del until[key]
                return


class AddressScores:
    """The decaying misbehaviour score of each ban key, fed by the penalties of all its connections.

    A key is banned when its score reaches `ban_score` + `per_connection` × its open connections. Bounded:
    scores live in an ordered dict, the least recently penalised forgotten past `max_keys` (each penalty
    O(1)); open connections are counted per key only while there are some."""

    def __init__(self, ban_score: float = ADDRESS_BAN_SCORE, per_connection: float = ADDRESS_SCORE_PER_CONNECTION,
                 decay_per_second: float = ADDRESS_SCORE_DECAY_PER_SECOND,
                 max_keys: int = MAX_SCORED_ADDRESSES) -> None:
        if ban_score <= 0 or per_connection < 0 or decay_per_second < 0 or max_keys < 1:
            raise ValueError("an address score needs a positive ban score, no negative rates and a key or more")
        self.ban_score = ban_score
        self.per_connection = per_connection
        self.decay_per_second = decay_per_second
        self.max_keys = max_keys
        self._scores: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (score, when)
        self._open: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._scores)

    def connected(self, key: str) -> None:
        self._open[key] += 1

    def disconnected(self, key: str) -> None:
        left = self._open[key] - 1
        if left > 0:
            self._open[key] = left
        else:
            del self._open[key]

    def limit(self, key: str) -> float:
        """The score at which `key` is banned now."""
        return self.ban_score + self.per_connection * self._open.get(key, 0)

    def score(self, key: str, now: float) -> float:
        held = self._scores.get(key)
        if held is None:
            return 0.0
        return max(0.0, held[0] - max(0.0, now - held[1]) * self.decay_per_second)

    def add(self, key: str, amount: float, now: float) -> bool:
        """Add a penalty to `key`'s score; True when that reaches its ban (the score starts again from 0)."""
        score = self.score(key, now) + amount
        self._scores.pop(key, None)
        if score >= self.limit(key):
            return True
        self._scores[key] = (score, now)  # the most recently penalised last
        if len(self._scores) > self.max_keys:
            self._scores.popitem(last=False)
        return False


class Admission:
    def __init__(self, max_per_ip: int, ban_seconds: float = DEFAULT_BAN_SECONDS, *,
                 ipv6_prefix: int = DEFAULT_IPV6_PREFIX, max_banned: int = MAX_BANNED,
                 scores: AddressScores | None = None) -> None:
        self.max_per_ip = max_per_ip
        self.ban_seconds = ban_seconds
        self.bans = BanTable(max_banned, ipv6_prefix)
        self.scores = scores if scores is not None else AddressScores()
        self._count: Counter[str] = Counter()

    def admit(self, ip: str, now: float) -> str | None:
        """None if the IP may connect now (and counts it), else the refusal reason."""
        if self.bans.is_banned(ip, now):
            return "banned"
        host = host_key(ip)
        if self._count[host] >= self.max_per_ip:
            return "too many connections from this address"
        self._count[host] += 1
        self.scores.connected(self.bans.key(ip))
        return None

    def release(self, ip: str) -> None:
        host = host_key(ip)
        self._count[host] -= 1
        if self._count[host] <= 0:
            del self._count[host]
        self.scores.disconnected(self.bans.key(ip))

    def penalize(self, ip: str, amount: float, now: float) -> bool:
        """Add a connection's penalty to its address's score (`AddressScores`); True when the address has now
        earned a ban (the caller bans it, so that the ban is logged and spread like any other)."""
        return self.scores.add(self.bans.key(ip), amount, now)

    def ban(self, ip: str, now: float, seconds: float | None = None) -> None:
        """Refuse `ip` (its `ban_key`) for `seconds` (default `ban_seconds`) from `now`; a longer ban in force
        is kept."""
        self.bans.ban(ip, now + (self.ban_seconds if seconds is None else seconds), now)

    def is_banned(self, ip: str, now: float) -> bool:
        return self.bans.is_banned(ip, now)

    def connections(self, ip: str) -> int:
        return self._count.get(host_key(ip), 0)
