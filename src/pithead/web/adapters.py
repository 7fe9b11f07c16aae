"""Adapters from the running parts to the web app's Protocols (see `pithead.web.services`).

`PoolServerLive` reads a `pithead.stratum.server.pool.PoolServer`'s open connections into the frozen
`PoolLiveStatus` the API and metrics show (or, for the multi-process pool, `WorkerPool.live_sessions()`:
what the workers listed in their last reports). It only reads attributes the server keeps for itself (its
connection set and each connection's sans-IO session) and never touches a transport.
"""

from __future__ import annotations

from typing import Any

from pithead.web.services import LiveConnection, PoolLiveStatus

# Sessions listed per snapshot: the count is always exact, but a page of 100,000 rows helps nobody.
MAX_LISTED_SESSIONS = 500


class PoolServerLive:
    def __init__(self, server: Any, stratum_url: str | None = None) -> None:
        self._server = server
        self._url = stratum_url

    def live_status(self) -> PoolLiveStatus:
        if hasattr(self._server, "live_sessions"):  # a multi-process pool: the workers' last reports
            return self._from_workers()
        conns = list(getattr(self._server, "connections", ()))
        sessions = []
        for c in conns:
            s = getattr(c, "session", None)
            if s is None:
                continue
            worker = getattr(s, "primary_worker", None)
            sessions.append(
                LiveConnection(
                    remote=str(getattr(s, "remote", None) or getattr(c, "ip", "?")),
                    worker=None if worker is None else str(worker.name),
                    difficulty=float(getattr(s, "difficulty", 0.0)),
                    connected_at=float(getattr(s, "connected_at", 0.0)),
                    user_agent=getattr(s, "user_agent", None),
                    last_share_at=getattr(s, "last_share_at", None),
                )
            )
            if len(sessions) >= MAX_LISTED_SESSIONS:
                break
        sessions.sort(key=lambda x: x.connected_at)
        return PoolLiveStatus(connections=len(conns), sessions=tuple(sessions), stratum_url=self._url)

    def _from_workers(self) -> PoolLiveStatus:
        count, rows = self._server.live_sessions()
        sessions = sorted(
            (LiveConnection(remote=remote, worker=worker, difficulty=diff, connected_at=at, user_agent=agent,
                            last_share_at=last)
             for remote, worker, diff, at, agent, last in rows[:MAX_LISTED_SESSIONS]),
            key=lambda x: x.connected_at,
        )
        return PoolLiveStatus(connections=count, sessions=tuple(sessions), stratum_url=self._url)
