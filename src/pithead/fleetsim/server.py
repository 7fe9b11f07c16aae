"""The asyncio shell of the simulated fleet: TCP listeners for the cgminer API and the web UIs.

How 24,000 devices are served by one process with `ulimit -n` 20,000
-------------------------------------------------------------------
One listening socket per device per port would need 2 × 24,000 descriptors before a single client
connects, so the default **shared** bind mode opens *one* listening socket per port, bound to the
wildcard address, and dispatches each accepted connection on its *destination* address
(`getsockname()` of the accepted socket — on Linux every 127.x.y.z is a local address, so a connection
to 127.16.3.7:4028 lands on the wildcard listener with that local address). Connections whose
destination is not a loopback address are reset at once; where the process may, the listener is also
bound to the loopback interface (`SO_BINDTODEVICE lo`), so the kernel never delivers outside traffic to
it in the first place. Descriptors are then spent only on live connections, which are bounded
(`MAX_CONNECTIONS`). A device that does not listen on a port (a Bitaxe on 4028) or is rebooting gets
a TCP reset, which clients see as they would a closed port.

The **per-device** bind mode (one listener per device address and port) exists for small fleets that
must coexist with other listeners on the same ports (another simulator on another `--network`, tests
running next to another service on 0.0.0.0:80): it refuses connections exactly like real hardware, at the
cost of descriptors.

The default, **auto**, picks per-device for fleets of up to `AUTO_PER_DEVICE_MAX` devices on fixed ports
and shared otherwise (and always for port 0, which only a single wildcard listener can share): a small
simulator then occupies ports 4028 and 80 only on its own network's addresses, so two simulators on
different `--network`s run side by side, while 24,000 devices still cost two descriptors. A listener that
cannot bind says which address and port, what it is for, and why (a wildcard listener blocks the port on
every loopback address).

Protocol handling: the cgminer API is one request per connection (the reply ends with NUL, then the
server closes; Antminers and Whatsminers listen there), the web UIs are HTTP/1.1 with keep-alive;
stock Antminers require HTTP Digest (realm `antMiner Configuration`, root/root), AxeOS has no auth,
a Whatsminer redirects to its HTTPS LuCI page. Which surfaces a device has, and the payloads, come from
`surfaces` (`SURFACES`, by device family).

Not here: device behaviour (`device`), payload shapes (`surfaces`, `pithead.farm.protocol`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

from pithead.farm.protocol import antminer_web as aw
from pithead.farm.protocol.cgminer import wire as cg
from pithead.fleetsim.device import SimDevice
from pithead.fleetsim.fleet import Fleet
from pithead.fleetsim.http import (
    MAX_REQUESTS_PER_CONNECTION,
    DigestAuthority,
    HttpError,
    HttpRequest,
    HttpRequestParser,
    build_response,
)
from pithead.fleetsim.models import Family
from pithead.fleetsim.surfaces import SURFACES

# Live client connections across all listeners. Under the 20,000-descriptor limit with room for the
# mining bridge's pool connections and the process's own files.
MAX_CONNECTIONS = 8000
# A cgminer client sends its request at once; if nothing complete arrives in this long, close.
API_READ_TIMEOUT_S = 5.0
# An idle keep-alive HTTP connection is closed after this (lighttpd's default keep-alive idle is 5 s).
HTTP_IDLE_TIMEOUT_S = 10.0
# Per-device listeners cost descriptors: above this many devices, per-device mode is refused.
MAX_PER_DEVICE_DEVICES = 4000
# Listen backlog: the kernel queue of not-yet-accepted connections when a poller bursts.
LISTEN_BACKLOG = 4096
# The auto bind mode listens per device up to this many devices: at most 2 x 400 listeners, under the
# usual soft limit of 1024 open files, so a `pithead farm sim run` of a few hundred devices never binds
# ports 4028 and 80 on addresses outside its own network.
AUTO_PER_DEVICE_MAX = 400

log = logging.getLogger(__name__)

BindMode = Literal["auto", "shared", "per-device"]
# Makes that answer on the cgminer API port (a Bitaxe has nothing listening there).
API_FAMILIES = frozenset(family for family, s in SURFACES.items() if s.api is not None)
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


class SimServerError(RuntimeError):
    """The fleet's listeners could not be set up (port in use, too many devices for the bind mode)."""


@dataclass(slots=True)
class ServeStats:
    connections: int = 0
    api_requests: int = 0
    http_requests: int = 0
    resets: int = 0
    rejected_foreign: int = 0
    active: int = 0
    by_family: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return self.api_requests + self.http_requests


def _reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a closed port or a rebooting unit looks to a client."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in _LOOPBACK
    except ValueError:
        return False


class _Base(asyncio.Protocol):
    __slots__ = ("_dev", "_srv", "_timer", "_transport")

    family: Family | None = None

    def __init__(self, srv: FleetServer) -> None:
        self._srv = srv
        self._transport: asyncio.Transport | None = None
        self._dev: SimDevice | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _accept(self, transport: asyncio.BaseTransport, want: frozenset[Family] | None) -> SimDevice | None:
        srv = self._srv
        srv.stats.connections += 1
        sockname = transport.get_extra_info("sockname")
        ip = sockname[0] if sockname else ""
        if not _is_loopback(ip):
            srv.stats.rejected_foreign += 1
            _reset(transport)
            return None
        if srv.stats.active >= MAX_CONNECTIONS:
            _reset(transport)
            return None
        dev = srv.fleet.by_ip.get(ip)
        now = srv.fleet.now()
        if dev is None or (want is not None and dev.spec.family not in want) or now < dev.down_until:
            srv.stats.resets += 1
            _reset(transport)
            return None
        srv.stats.active += 1
        return dev

    def connection_lost(self, exc: Exception | None) -> None:
        if self._dev is not None:
            self._srv.stats.active -= 1
            self._dev = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class CgminerProtocol(_Base):
    """One request per connection: read it, answer with a NUL-terminated reply, close."""

    __slots__ = ("_buf", "_done")

    def __init__(self, srv: FleetServer) -> None:
        super().__init__(srv)
        self._buf = bytearray()
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._dev = self._accept(transport, API_FAMILIES)
        if self._dev is None:
            return
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(API_READ_TIMEOUT_S, self._timeout)

    def _timeout(self) -> None:
        self._timer = None
        if self._transport is not None and not self._done:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._done or self._dev is None:
            return
        self._buf += data
        buf = bytes(self._buf)
        stripped = buf.rstrip(b"\x00\r\n\t ")
        if len(buf) <= cg.MAX_REQUEST_BYTES and stripped.startswith(b"{") and not stripped.endswith(b"}"):
            return  # a JSON request still arriving
        self._answer(buf)

    def eof_received(self) -> bool | None:
        if not self._done and self._dev is not None and self._buf:
            self._answer(bytes(self._buf))
        return None

    def _answer(self, data: bytes) -> None:
        assert self._transport is not None and self._dev is not None
        self._done = True
        srv = self._srv
        srv.stats.api_requests += 1
        api = SURFACES[self._dev.spec.family].api
        assert api is not None  # a family without the API is refused at accept (API_FAMILIES)
        try:
            reply = api(srv.fleet, self._dev, data, srv.fleet.now())
        except Exception:  # a bug in one reply must not take the listener down: answer E and log it
            log.exception("simulated device %s failed to answer %r", self._dev.ip, data[:80])
            reply = cg.frame_reply(
                cg.error_reply(int(srv.fleet.now()), cg.Code.INVCMD, "Invalid command", "")
            )
        self._transport.write(reply)
        self._transport.close()


class HttpProtocol(_Base):
    """HTTP/1.1 with keep-alive; routes to the device family's web surface (Digest first where it wants it)."""

    __slots__ = ("_count", "_parser")

    def __init__(self, srv: FleetServer) -> None:
        super().__init__(srv)
        self._parser = HttpRequestParser()
        self._count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._dev = self._accept(transport, None)
        if self._dev is None:
            return
        self._transport = transport  # type: ignore[assignment]
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(HTTP_IDLE_TIMEOUT_S, self._idle)

    def _idle(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._dev is None or self._transport is None or self._transport.is_closing():
            return
        try:
            requests = self._parser.feed(data)
        except HttpError as exc:
            self._transport.write(
                build_response(exc.status, exc.detail.encode(), "text/plain", keep_alive=False)
            )
            self._transport.close()
            return
        for req in requests:
            if self._transport.is_closing():
                return
            self._serve(req)
        self._arm()

    def _serve(self, req: HttpRequest) -> None:
        assert self._transport is not None and self._dev is not None
        srv = self._srv
        srv.stats.http_requests += 1
        self._count += 1
        keep = req.keep_alive and self._count < MAX_REQUESTS_PER_CONNECTION
        dev = self._dev
        now = srv.fleet.now()
        if now < dev.down_until:  # rebooted by an earlier request on this connection
            _reset(self._transport)
            return
        try:
            status, body, ctype, extra = self._route(req, dev, now)
        except Exception:  # never let one request's failure reach the event loop
            log.exception("simulated device %s failed on %s %s", dev.ip, req.method, req.path)
            status, body, ctype, extra = 500, b"", "text/plain", ()
        self._transport.write(build_response(status, body, ctype, extra, keep_alive=keep))
        if not keep:
            self._transport.close()

    def _route(
        self, req: HttpRequest, dev: SimDevice, now: float
    ) -> tuple[int, bytes, str, tuple[tuple[str, str], ...]]:
        """(status, body, content type, extra headers) for one request to one device."""
        srv = self._srv
        surface = SURFACES[dev.spec.family]
        if surface.web_digest and not srv.digest.verify(req.method, req.header("authorization"), now):
            body = b"<html><head><title>401 Unauthorized</title></head><body>401 Unauthorized</body></html>"
            return 401, body, "text/html", (("WWW-Authenticate", srv.digest.challenge(now)),)
        return surface.web(srv.fleet, dev, req.method, req.path, req.body, now)


class FleetServer:
    """Serves a `Fleet` on the cgminer API port and the web port."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        api_port: int = cg.PORT,
        web_port: int = 80,
        bind: BindMode = "auto",
        digest_secret: bytes | None = None,
    ) -> None:
        self.fleet = fleet
        self.api_port = api_port
        self.web_port = web_port
        self.bind: Literal["shared", "per-device"] = resolve_bind(bind, len(fleet), api_port, web_port)
        self.stats = ServeStats()
        self.digest = DigestAuthority(aw.REALM, aw.DEFAULT_USER, aw.DEFAULT_PASSWORD, digest_secret)
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.bind == "shared":
                for port, factory, what in ((self.api_port, CgminerProtocol, "cgminer API"),
                                            (self.web_port, HttpProtocol, "web")):
                    sock = _shared_listener(port, what)
                    self._servers.append(await loop.create_server(lambda f=factory: f(self), sock=sock))  # type: ignore[misc]
            else:
                if len(self.fleet) > MAX_PER_DEVICE_DEVICES:
                    raise SimServerError(
                        f"per-device binding is limited to {MAX_PER_DEVICE_DEVICES} devices; use shared"
                    )
                for dev in self.fleet:
                    listeners: list[tuple[int, type[_Base], str]] = [(self.web_port, HttpProtocol, "web")]
                    if dev.spec.family in API_FAMILIES:
                        listeners.insert(0, (self.api_port, CgminerProtocol, "cgminer API"))
                    for port, proto, what in listeners:
                        try:
                            server = await loop.create_server(
                                lambda f=proto: f(self),  # type: ignore[misc]
                                dev.ip, port, reuse_address=True, backlog=128,
                            )
                        except OSError as exc:
                            raise SimServerError(_bind_error(dev.ip, port, what, exc)) from exc
                        self._servers.append(server)
        except SimServerError:
            await self.close()
            raise
        except OSError as exc:
            await self.close()
            raise SimServerError(f"cannot listen: {exc}") from exc

    def bound_ports(self) -> tuple[int, int]:
        """(api, web) ports actually bound (useful with port 0 in shared mode)."""
        if self.bind != "shared" or len(self._servers) < 2:
            return self.api_port, self.web_port
        a = self._servers[0].sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        w = self._servers[1].sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return a, w

    async def close(self) -> None:
        for s in self._servers:
            s.close()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        self._servers.clear()

    async def __aenter__(self) -> FleetServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def resolve_bind(bind: BindMode, devices: int, api_port: int, web_port: int) -> Literal["shared", "per-device"]:
    """The bind mode `auto` stands for (see the module docstring); the others as they are."""
    if bind != "auto":
        return bind
    if devices <= AUTO_PER_DEVICE_MAX and api_port != 0 and web_port != 0:
        return "per-device"
    return "shared"


def _bind_error(host: str, port: int, what: str, exc: OSError) -> str:
    """Which port, on which address, for what, and why it could not be had."""
    where = "every address (the shared bind mode's wildcard listener)" if host == "0.0.0.0" else host
    line = f"cannot listen on {host}:{port}, the {what} port, on {where}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRINUSE:
        if host == "0.0.0.0":
            line += (f". Something already listens on port {port} (another simulator or service, on any "
                     "address); the shared bind mode needs the port on every loopback address. Use --bind "
                     f"per-device (up to {MAX_PER_DEVICE_DEVICES} devices), or other --api-port/--web-port")
        else:
            line += (f". Something already listens on port {port} there, or on every address (a simulator in "
                     "shared bind mode, or another service); stop it, or choose other --api-port/--web-port")
    elif exc.errno == errno.EACCES:
        line += f". Port {port} is privileged: run as root, or choose a port above 1023"
    return line


def _shared_listener(port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Keep outside traffic away at the kernel level where allowed (needs CAP_NET_RAW); the
        # getsockname() check in _accept is the guard either way.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            raise SimServerError(_bind_error("0.0.0.0", port, what, exc)) from exc
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except (OSError, SimServerError):
        sock.close()
        raise
    return sock
