"""Whatsminer (btminer API v2, TCP 4028) privileged commands, sans-IO, both sides: the token flow and
`adjust_power_limit`.

The write API is encrypted (field notes §2.2, pyasic rpc/btminer.py [P12], public clients [W1]):
1. `{"command":"get_token"}` answers `Msg: {time, salt, newsalt}` (code 134).
2. key  = the hash field of md5-crypt(password, "$1$<salt>$") (the part after the third `$`);
   sign = the hash field of md5-crypt(key + time, "$1$<newsalt>$").
3. AES-256-ECB with key sha256(key); the command JSON, with `"token": sign`, NUL-padded to 16 bytes,
   encrypted and base64'd, travels as `{"enc":1,"data":"<base64>"}`; the reply comes back as
   `{"enc":"<base64>"}` under the same key.
`adjust_power_limit` (`power_limit`: watts as a string) sets the upper limit of the unit's power; it
"cannot be higher than the ordinary power of the machine", and the miner restarts its mining to apply it
(pyasic's docstring of `adjust_power_limit`). The firmware reports no floor; `MIN_LIMIT_FRACTION` is the
lowest fraction of nominal power we ask for (an assumption, stated where it is used).

md5-crypt is passlib's (the library pyasic itself uses for this), AES is `cryptography`'s. Nothing here
opens a socket or reads the clock; the server side's salts and time come in as parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from passlib.hash import md5_crypt

from pithead.farm.protocol.errors import CodecError

DEFAULT_PASSWORD = "admin"  # the factory password of the API (pyasic settings [P13])
CODE_TOKEN = 134
CODE_OK = 131
CODE_WRITE_DENIED = 45  # "can't access write cmd"
CODE_BAD_TOKEN = 23  # our pick for a token that does not verify (the vendor's table is not public)
CODE_BAD_VALUE = 14
# A Whatsminer is not asked below this fraction of its nominal power: the firmware states no floor, and
# below ~60 % the chips leave their stable voltage band (the LuxOS profile range ends at a similar point).
MIN_LIMIT_FRACTION = 0.6
SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_ENC_BYTES = 16 * 1024


class WhatsminerError(CodecError):
    """A Whatsminer privileged exchange that cannot go on: bad token payload, undecryptable data."""


@dataclass(frozen=True, slots=True)
class Token:
    time: str
    salt: str
    newsalt: str


@dataclass(frozen=True, slots=True)
class Keys:
    """What one token gives a client (and the server that issued it): the signature and the AES key."""

    sign: str
    aes_key: bytes


def _crypt_field(secret: str, salt: str) -> str:
    if not salt or len(salt) > 8 or any(c not in SALT_CHARS for c in salt):
        raise WhatsminerError(f"bad md5-crypt salt {salt!r}")
    if "\x00" in secret:  # md5-crypt (C strings) cannot take it; no firmware's password holds one
        raise WhatsminerError("a Whatsminer password cannot contain a NUL character")
    return str(md5_crypt.using(salt=salt).hash(secret)).split("$")[3]


def derive_keys(password: str, token: Token) -> Keys:
    key = _crypt_field(password, token.salt)
    sign = _crypt_field(key + token.time, token.newsalt)
    return Keys(sign, hashlib.sha256(key.encode()).digest())


def token_request() -> bytes:
    return orjson.dumps({"command": "get_token"})  # the plain (cgminer-style) read form, as pyasic sends it


def parse_token(reply: Mapping[str, Any]) -> Token:
    if reply.get("STATUS") == "E" or (isinstance(reply.get("Msg"), str)):
        raise WhatsminerError(f"get_token refused: {reply.get('Msg')!r}")
    msg = reply.get("Msg")
    if not isinstance(msg, dict):
        raise WhatsminerError("get_token: no Msg object")
    vals = [msg.get(k) for k in ("time", "salt", "newsalt")]
    if not all(isinstance(v, str) and v for v in vals):
        raise WhatsminerError("get_token: Msg lacks time/salt/newsalt")
    return Token(*vals)  # type: ignore[arg-type]


def _aes(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.AES(key), modes.ECB())


def _seal(key: bytes, obj: Mapping[str, Any]) -> str:
    raw = orjson.dumps(obj)
    raw += b"\x00" * (-len(raw) % 16)
    enc = _aes(key).encryptor()
    return base64.b64encode(enc.update(raw) + enc.finalize()).decode()


def _open(key: bytes, data: Any) -> dict[str, Any]:
    if not isinstance(data, str) or len(data) > MAX_ENC_BYTES:
        raise WhatsminerError("encrypted payload missing or too long")
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WhatsminerError("encrypted payload is not base64") from exc
    if not blob or len(blob) % 16:
        raise WhatsminerError("encrypted payload is not whole AES blocks")
    dec = _aes(key).decryptor()
    try:
        obj = orjson.loads((dec.update(blob) + dec.finalize()).rstrip(b"\x00"))
    except orjson.JSONDecodeError as exc:
        raise WhatsminerError("payload does not decrypt to JSON (wrong password?)") from exc
    if not isinstance(obj, dict):
        raise WhatsminerError("decrypted payload is not a JSON object")
    return obj


def encrypt_command(keys: Keys, cmd: str, **params: str) -> bytes:
    """The bytes of one privileged request: `{"enc":1,"data":"<base64 AES(json+token)>"}`."""
    return orjson.dumps({"enc": 1, "data": _seal(keys.aes_key, {"cmd": cmd, **params, "token": keys.sign})})


def adjust_power_limit_request(keys: Keys, watts: int) -> bytes:
    if not 0 < watts < 100_000:
        raise WhatsminerError(f"power limit {watts} W out of range")
    return encrypt_command(keys, "adjust_power_limit", power_limit=str(int(watts)))


def decrypt_reply(keys: Keys, reply: Mapping[str, Any]) -> dict[str, Any]:
    """A privileged reply: `{"enc":"…"}` decrypted; a plain reply (an error sent in clear) as it is."""
    if "enc" not in reply:
        return dict(reply)
    return _open(keys.aes_key, reply["enc"])


def check_ok(reply: Mapping[str, Any], command: str) -> None:
    """btminer's own status shape (`STATUS` a string): anything but "S" raises `WhatsminerError`."""
    if reply.get("STATUS") != "S":
        raise WhatsminerError(f"{command}: {reply.get('Msg')!r} (code {reply.get('Code')})")


# --------------------------------------------------------------------------------------------------
# Server side (what the simulated firmware does)


def token_reply(t: int, token: Token) -> dict[str, Any]:
    return {"STATUS": "S", "When": t, "Code": CODE_TOKEN,
            "Msg": {"time": token.time, "salt": token.salt, "newsalt": token.newsalt}, "Description": ""}


def open_request(keys: Keys, request: Mapping[str, Any]) -> dict[str, Any]:
    """The command inside `{"enc":1,"data":…}`, its token checked against `keys` (WhatsminerError if not)."""
    cmd = _open(keys.aes_key, request.get("data"))
    if cmd.get("token") != keys.sign:
        raise WhatsminerError("token does not verify")
    return cmd


def seal_reply(keys: Keys, reply: Mapping[str, Any]) -> dict[str, Any]:
    return {"enc": _seal(keys.aes_key, reply)}


def status(t: int, ok: bool, code: int, msg: str) -> dict[str, Any]:
    return {"STATUS": "S" if ok else "E", "When": t, "Code": code, "Msg": msg, "Description": ""}
