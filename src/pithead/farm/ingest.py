"""The collector -> central wire format: batches of poll results and inventory, encoded and validated here.

A collector (`pithead farm collect`, `FarmService` in the COLLECTOR role) polls its shard and POSTs its
results to the central service's `POST /farm/api/ingest` (see `pithead.web.farm`) as one JSON object:

    {"v": 1, "batch": "<32 hex, unique per batch>", "collector": "<name, e.g. host/0of4>",
     "devices": [Device, ...],          # inventory: new devices and identity/label changes (may be empty)
     "results": [PollResult, ...]}      # readings, oldest first (may be empty)

Device and PollResult are the canonical model (`pithead.farm.model`) exactly as orjson writes the frozen
dataclasses (enums as their values), so the collector encodes a whole batch in one `orjson.dumps` call.
The body may be gzip-compressed (`Content-Encoding: gzip`); readings compress ~10x.

Validation (`decode_batch`) is strict and in two layers:
- the envelope (size, encoding, JSON, version, batch id, collector name, list bounds): a problem there
  refuses the whole batch with an `IngestError` carrying its HTTP status (400, 413, 415, 422) and a
  message that names the field;
- each device and each result is validated field by field on its own (types, bounds, finite numbers,
  `reading` iff state is ok, the reading's device id matching, times not in the future beyond
  `MAX_FUTURE_SKEW_S`): a bad item is refused alone, by index, with the reason, and never poisons the
  good items of its batch.
Idempotency lives in the store (`FarmStore.ingest`): a batch id already ingested is acknowledged and
written again never, and a (device, time) already in the history is never written twice.

This module is sans-IO: bytes in, values out; no sockets, no clock (times come in as parameters).
"""

from __future__ import annotations

import gzip
import math
import re
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pithead.farm.model import (
    Board,
    Device,
    DeviceAddress,
    DeviceState,
    DriverKind,
    Fan,
    FarmError,
    Identity,
    Labels,
    ModelError,
    PollResult,
    PoolEntry,
    Reading,
)

INGEST_VERSION = 1
# One POST body on the wire, as sent (compressed or not). A batch of 5,000 readings is ~3 MB of JSON,
# ~0.3 MB gzipped; 16 MiB leaves room for an uncompressed inventory batch and refuses anything absurd.
MAX_BODY_BYTES = 16 * 1024 * 1024
# The JSON after decompression: bounded separately so a small gzip bomb cannot expand without limit.
MAX_JSON_BYTES = 64 * 1024 * 1024
# Items per batch. The collector sends what one poller flush holds (RESULT_BATCH = 2,000) and chunks its
# inventory; the bounds keep one request's validation and transaction short (tens of milliseconds).
MAX_BATCH_RESULTS = 5000
MAX_BATCH_DEVICES = 5000
# A result stamped further in the future than this is refused: a collector with a wrong clock would
# otherwise pin "latest status" to a time no real reading can ever replace.
MAX_FUTURE_SKEW_S = 300.0
# Collector names are shown in logs and the ingest status; short and printable.
MAX_COLLECTOR_LEN = 64
# Per-item bounds (a real miner has 3-4 boards, 2-4 fans, 3 pools; Bitaxe 1 board).
MAX_BOARDS = 16
MAX_FANS = 16
MAX_POOLS = 8
MAX_ERRORS = 32
MAX_TEXT = 256  # any free text (error, firmware, pool url, ...)
# How many refused items a response lists in full (the count is always exact).
MAX_REFUSALS_LISTED = 100

_BATCH_ID = re.compile(r"[0-9a-f]{32}")


class IngestError(FarmError):
    """A batch refused as a whole; `status` is the HTTP status the endpoint answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ItemError(FarmError):
    """One device or result of a batch that cannot be accepted (the rest of the batch still is)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused item: which list ("devices" or "results"), its index there, its device id if it had a
    readable one, and why."""

    kind: str
    index: int
    device_id: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index, "device_id": self.device_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: only the items that passed validation, plus the refusals."""

    batch_id: str
    collector: str
    devices: tuple[Device, ...]
    results: tuple[PollResult, ...]
    refused: tuple[Refusal, ...]
    result_index: tuple[int, ...] = ()  # each accepted result's index in the batch as sent


def new_batch_id() -> str:
    """A fresh batch id (random, so a spool file lost and recreated never reuses an id already ingested)."""
    return uuid.uuid4().hex


def encode_batch(batch_id: str, collector: str, devices: Sequence[Device] = (),
                 results: Sequence[PollResult] = ()) -> bytes:
    """The JSON body of one batch (uncompressed; `compress` gzips it)."""
    return orjson.dumps({"v": INGEST_VERSION, "batch": batch_id, "collector": collector,
                         "devices": list(devices), "results": list(results)})


def compress(body: bytes) -> bytes:
    """gzip at level 1: readings compress ~10x at a fraction of a millisecond per 100 kB."""
    return gzip.compress(body, compresslevel=1)


def _inflate(raw: bytes) -> bytes:
    """gunzip with a bound on the output (a gzip bomb is refused, never expanded in full)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, MAX_JSON_BYTES)
        if d.unconsumed_tail:
            raise IngestError(413, f"the batch expands to more than {MAX_JSON_BYTES} bytes of JSON")
        out += d.flush()
    except zlib.error as exc:
        raise IngestError(400, f"the body is not valid gzip: {exc}") from exc
    if not d.eof:
        raise IngestError(400, "the gzip body is truncated")
    return out


def decode_batch(raw: bytes, content_encoding: str | None, now: float) -> Batch:
    """Validate one POSTed body. Raises IngestError for a problem with the batch as a whole; refuses bad
    items one by one (in `Batch.refused`)."""
    if len(raw) > MAX_BODY_BYTES:
        raise IngestError(413, f"the body is larger than {MAX_BODY_BYTES} bytes; send smaller batches")
    enc = (content_encoding or "identity").strip().lower()
    if enc == "gzip":
        raw = _inflate(raw)
    elif enc != "identity":
        raise IngestError(415, f"unsupported Content-Encoding {content_encoding!r} (use gzip or none)")
    elif len(raw) > MAX_JSON_BYTES:
        raise IngestError(413, f"the batch is larger than {MAX_JSON_BYTES} bytes of JSON")
    if not raw:
        raise IngestError(400, "empty body: send a JSON batch object")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise IngestError(422, "the batch must be a JSON object")
    unknown = set(doc) - {"v", "batch", "collector", "devices", "results"}
    if unknown:
        raise IngestError(422, f"unknown batch field(s): {', '.join(sorted(map(str, unknown)))}")
    if doc.get("v") != INGEST_VERSION or isinstance(doc.get("v"), bool):
        raise IngestError(422, f"field 'v': unsupported batch version {doc.get('v')!r} (this server speaks "
                               f"{INGEST_VERSION})")
    batch_id = doc.get("batch")
    if not isinstance(batch_id, str) or not _BATCH_ID.fullmatch(batch_id):
        raise IngestError(422, "field 'batch': must be 32 lowercase hex characters (a uuid4 hex)")
    collector = doc.get("collector")
    if (not isinstance(collector, str) or not 0 < len(collector) <= MAX_COLLECTOR_LEN
            or not collector.isprintable()):
        raise IngestError(422, f"field 'collector': must be 1-{MAX_COLLECTOR_LEN} printable characters")
    raw_devices = doc.get("devices", [])
    raw_results = doc.get("results", [])
    if not isinstance(raw_devices, list) or len(raw_devices) > MAX_BATCH_DEVICES:
        raise IngestError(422 if not isinstance(raw_devices, list) else 413,
                          f"field 'devices': must be a list of at most {MAX_BATCH_DEVICES} devices")
    if not isinstance(raw_results, list) or len(raw_results) > MAX_BATCH_RESULTS:
        raise IngestError(422 if not isinstance(raw_results, list) else 413,
                          f"field 'results': must be a list of at most {MAX_BATCH_RESULTS} results")
    refused: list[Refusal] = []
    devices: list[Device] = []
    for i, item in enumerate(raw_devices):
        try:
            devices.append(device_from_json(item))
        except ItemError as exc:
            refused.append(Refusal("devices", i, _id_of(item, "device"), str(exc)))
    results: list[PollResult] = []
    index: list[int] = []
    for i, item in enumerate(raw_results):
        try:
            results.append(result_from_json(item, now))
            index.append(i)
        except ItemError as exc:
            refused.append(Refusal("results", i, _id_of(item, "result"), str(exc)))
    return Batch(batch_id, collector, tuple(devices), tuple(results), tuple(refused), tuple(index))


# ---- field by field ---------------------------------------------------------------------------------


def _id_of(item: object, kind: str) -> str | None:
    if not isinstance(item, dict):
        return None
    if kind == "result":
        v = item.get("device_id")
        return v if isinstance(v, str) and len(v) <= MAX_TEXT else None
    addr = item.get("address")
    if isinstance(addr, dict):
        try:
            return _address(addr).device_id
        except (ItemError, ModelError, ValueError):
            return None
    return None


def _obj(v: object, what: str, fields: frozenset[str], required: frozenset[str]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ItemError(f"{what}: must be an object")
    keys = v.keys()
    if not keys <= fields:  # (subset tests allocate nothing on the good path)
        raise ItemError(f"{what}: unknown field(s) {', '.join(sorted(map(str, keys - fields)))}")
    if not required <= keys:
        raise ItemError(f"{what}: missing field(s) {', '.join(sorted(required - keys))}")
    return v


def _each(items: list[Any], what: str, check: Callable[[Any], Any]) -> list[Any]:
    """`check` over a list's items; an error names the item's index (formatted only on the error path:
    a batch has thousands of boards, fans and pools)."""
    out = []
    for k, item in enumerate(items):
        try:
            out.append(check(item))
        except ItemError as exc:
            raise ItemError(f"{what}[{k}]{exc}") from None
    return out


def _num(v: object, what: str, lo: float = 0.0, hi: float = math.inf, optional: bool = False) -> float | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ItemError(f"{what}: must be a number")
    f = float(v)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise ItemError(f"{what}: {v!r} is out of range")
    return f


def _int(v: object, what: str, lo: int = 0, hi: int = 2**53, optional: bool = False) -> int | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ItemError(f"{what}: must be an integer within {lo}..{hi}")
    return v


def _text(v: object, what: str, optional: bool = False, limit: int = MAX_TEXT) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise ItemError(f"{what}: must be a string of at most {limit} characters")
    return v


def _bool(v: object, what: str, optional: bool = False) -> bool | None:
    if v is None and optional:
        return None
    if not isinstance(v, bool):
        raise ItemError(f"{what}: must be true or false")
    return v


def _list(v: object, what: str, limit: int) -> list[Any]:
    if not isinstance(v, list) or len(v) > limit:
        raise ItemError(f"{what}: must be a list of at most {limit} items")
    return v


_ADDRESS = frozenset({"host", "port", "driver"})
_IDENTITY = frozenset({"make", "model", "firmware", "mac", "hostname", "serial", "expected_ths",
                       "expected_boards", "expected_fans"})
_LABELS = frozenset({"site", "rack", "position"})
_DEVICE = frozenset({"address", "identity", "labels", "first_seen", "last_seen"})
_RESULT = frozenset({"device_id", "time", "state", "reading", "error", "latency_s"})
_READING = frozenset({"device_id", "time", "hashrate_ths", "expected_ths", "boards", "fans", "power_w", "pools",
                      "errors", "uptime_s", "is_mining"})
_BOARD = frozenset({"index", "hashrate_ths", "chips", "expected_chips", "board_temp_c", "chip_temp_c", "serial"})
_FAN = frozenset({"index", "rpm"})
_POOL = frozenset({"index", "url", "user", "alive", "active", "accepted", "rejected"})
# Sensor sanity: a reading outside these is a broken sensor or a forged body, not a hot miner.
_TEMP = (-60.0, 250.0)
_HASHRATE_MAX_THS = 1.0e6  # 1 EH/s from one box is not a reading
_POWER_MAX_W = 1.0e6


def _address(d: object) -> DeviceAddress:
    a = _obj(d, "address", _ADDRESS, _ADDRESS)
    host = _text(a["host"], "address.host", limit=253)
    port = _int(a["port"], "address.port", 1, 65535)
    driver = _text(a["driver"], "address.driver")
    if driver not in set(DriverKind):
        raise ItemError(f"address.driver: {driver!r} is not one of {', '.join(k.value for k in DriverKind)}")
    assert host is not None and port is not None
    try:
        return DeviceAddress(host, port, DriverKind(driver))
    except ModelError as exc:
        raise ItemError(f"address: {exc}") from exc


def device_from_json(d: object) -> Device:
    o = _obj(d, "device", _DEVICE, frozenset({"address", "identity"}))
    address = _address(o["address"])
    i = _obj(o["identity"], "identity", _IDENTITY, frozenset({"make", "model"}))
    identity = Identity(
        make=_text(i["make"], "identity.make") or "", model=_text(i["model"], "identity.model") or "",
        firmware=_text(i.get("firmware"), "identity.firmware", True),
        mac=_text(i.get("mac"), "identity.mac", True), hostname=_text(i.get("hostname"), "identity.hostname", True),
        serial=_text(i.get("serial"), "identity.serial", True),
        expected_ths=_num(i.get("expected_ths"), "identity.expected_ths", 0, _HASHRATE_MAX_THS, True),
        expected_boards=_int(i.get("expected_boards"), "identity.expected_boards", 0, MAX_BOARDS, True),
        expected_fans=_int(i.get("expected_fans"), "identity.expected_fans", 0, MAX_FANS, True),
    )
    lab = _obj(o.get("labels", {}), "labels", _LABELS, frozenset())
    labels = Labels(*(_label(lab.get(k, ""), f"labels.{k}") for k in ("site", "rack", "position")))
    first = _num(o.get("first_seen", 0.0), "first_seen")
    last = _num(o.get("last_seen", 0.0), "last_seen")
    assert first is not None and last is not None
    return Device(address, identity, labels, first, last)


def _label(v: object, what: str) -> str:
    # the store's own rule (pithead.farm.store.MAX_LABEL_LEN, printable): checked here so a bad label is
    # refused as one item instead of failing the store's transaction for the whole batch
    s = _text(v, what, limit=64) or ""
    if any(ord(c) < 32 for c in s):
        raise ItemError(f"{what}: control characters are not allowed")
    return s


def result_from_json(d: object, now: float) -> PollResult:
    o = _obj(d, "result", _RESULT, frozenset({"device_id", "time", "state"}))
    device_id = _text(o["device_id"], "device_id") or ""
    t = _num(o["time"], "time", 1.0)
    assert t is not None
    if t > now + MAX_FUTURE_SKEW_S:
        raise ItemError(f"time: {t - now:.0f} s ahead of the central's clock (more than {MAX_FUTURE_SKEW_S:.0f} s): "
                        "check the collector's clock (NTP)")
    state_s = _text(o["state"], "state")
    polled = {DeviceState.OK, DeviceState.TIMEOUT, DeviceState.UNREACHABLE, DeviceState.ERROR}
    if state_s not in {s.value for s in polled}:
        raise ItemError(f"state: {state_s!r} is not one of {', '.join(sorted(s.value for s in polled))}")
    state = DeviceState(state_s)
    raw_reading = o.get("reading")
    reading = _reading(raw_reading, device_id, now) if raw_reading is not None else None
    error = _text(o.get("error"), "error", True)
    latency = _num(o.get("latency_s", 0.0), "latency_s", 0.0, 3600.0)
    assert latency is not None
    try:
        return PollResult(device_id, t, state, reading, error, latency)
    except ModelError as exc:
        raise ItemError(str(exc)) from exc


def _board(d: object) -> Board:
    o = _obj(d, "", _BOARD, frozenset({"index", "hashrate_ths"}))
    return Board(
        index=_int(o["index"], ".index", 0, 255) or 0,
        hashrate_ths=_num(o["hashrate_ths"], ".hashrate_ths", 0, _HASHRATE_MAX_THS) or 0.0,
        chips=_int(o.get("chips"), ".chips", 0, 10_000, True),
        expected_chips=_int(o.get("expected_chips"), ".expected_chips", 0, 10_000, True),
        board_temp_c=_num(o.get("board_temp_c"), ".board_temp_c", *_TEMP, optional=True),
        chip_temp_c=_num(o.get("chip_temp_c"), ".chip_temp_c", *_TEMP, optional=True),
        serial=_text(o.get("serial"), ".serial", True),
    )


def _fan(d: object) -> Fan:
    o = _obj(d, "", _FAN, _FAN)
    return Fan(_int(o["index"], ".index", 0, 255) or 0, _int(o["rpm"], ".rpm", 0, 100_000) or 0)


def _pool(d: object) -> PoolEntry:
    o = _obj(d, "", _POOL, frozenset({"index", "url", "user"}))
    return PoolEntry(
        index=_int(o["index"], ".index", 0, 255) or 0, url=_text(o["url"], ".url") or "",
        user=_text(o["user"], ".user") or "", alive=_bool(o.get("alive"), ".alive", True),
        active=bool(_bool(o.get("active", False), ".active")),
        accepted=_int(o.get("accepted"), ".accepted", optional=True),
        rejected=_int(o.get("rejected"), ".rejected", optional=True),
    )


def _error_text(v: object) -> str:
    return _text(v, "") or ""


def _reading(d: object, device_id: str, now: float) -> Reading:
    r = _obj(d, "reading", _READING, frozenset({"device_id", "time", "hashrate_ths"}))
    if r["device_id"] != device_id:
        raise ItemError(f"reading.device_id {r['device_id']!r} is not the result's device_id")
    boards = _each(_list(r.get("boards", []), "reading.boards", MAX_BOARDS), "reading.boards", _board)
    fans = _each(_list(r.get("fans", []), "reading.fans", MAX_FANS), "reading.fans", _fan)
    pools = _each(_list(r.get("pools", []), "reading.pools", MAX_POOLS), "reading.pools", _pool)
    errors = _each(_list(r.get("errors", []), "reading.errors", MAX_ERRORS), "reading.errors", _error_text)
    t = _num(r["time"], "reading.time", 1.0, now + MAX_FUTURE_SKEW_S)
    assert t is not None
    try:
        return Reading(
            device_id=device_id, time=t,
            hashrate_ths=_num(r["hashrate_ths"], "reading.hashrate_ths", 0, _HASHRATE_MAX_THS) or 0.0,
            expected_ths=_num(r.get("expected_ths"), "reading.expected_ths", 0, _HASHRATE_MAX_THS, True),
            boards=tuple(boards), fans=tuple(fans),
            power_w=_num(r.get("power_w"), "reading.power_w", 0, _POWER_MAX_W, True), pools=tuple(pools),
            errors=tuple(errors), uptime_s=_num(r.get("uptime_s"), "reading.uptime_s", 0, 1e10, True),
            is_mining=bool(_bool(r.get("is_mining", True), "reading.is_mining")),
        )
    except ModelError as exc:
        raise ItemError(str(exc)) from exc
