"""Per-IP admission: temporary bans for flooders and a cap on connections per IP (pure, time passed in)."""

from __future__ import annotations

from collections import Counter

DEFAULT_BAN_SECONDS = 600.0
"""How long a flooder of junk or invalid shares is refused: long enough to stop a loop, short enough that a
misconfigured honest rig recovers after it is fixed."""
MAX_BANNED = 100_000
"""Bound on remembered bans; the earliest-expiring are forgotten first."""


class Admission:
    def __init__(self, max_per_ip: int, ban_seconds: float = DEFAULT_BAN_SECONDS) -> None:
        self.max_per_ip = max_per_ip
        self.ban_seconds = ban_seconds
        self._banned: dict[str, float] = {}
        self._count: Counter[str] = Counter()

    def admit(self, ip: str, now: float) -> str | None:
        """None if the IP may connect now (and counts it), else the refusal reason."""
        until = self._banned.get(ip)
        if until is not None:
            if now < until:
                return "banned"
            del self._banned[ip]
        if self._count[ip] >= self.max_per_ip:
            return "too many connections from this address"
        self._count[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self._count[ip] -= 1
        if self._count[ip] <= 0:
            del self._count[ip]

    def ban(self, ip: str, now: float, seconds: float | None = None) -> None:
        """Refuse `ip` for `seconds` (default `ban_seconds`) from `now`; a longer ban in force is kept."""
        if len(self._banned) >= MAX_BANNED:
            del self._banned[min(self._banned, key=self._banned.__getitem__)]
        until = now + (self.ban_seconds if seconds is None else seconds)
        self._banned[ip] = max(until, self._banned.get(ip, until))

    def is_banned(self, ip: str, now: float) -> bool:
        until = self._banned.get(ip)
        return until is not None and now < until

    def connections(self, ip: str) -> int:
        return self._count.get(ip, 0)
