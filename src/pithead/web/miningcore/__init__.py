"""A Miningcore-compatible read API: Miningcore's paths, field names and units over pithead's own ledger.

Pool front ends (the Miningcore WebUI and its forks) and monitoring scripts speak Miningcore's API; this
package serves it beside pithead's own `/api/...`, so they work against a pithead pool unchanged:

* `models`: the response shapes, field for field as Miningcore's C# DTOs define them (camelCase names,
  amounts in coins, hashrates in H/s, times as ISO 8601 UTC strings, null fields left out);
* `queries`: the answers, built from a `StoreReader` (and the node's status) with the time passed in;
* `router`: the paths, Miningcore's paging (`page`, `pageSize`, the v2 `PagedResultResponse` envelope) and
  its errors.

It reads only: Miningcore's write paths (miner settings, the admin API) and its WebSocket notifications
are not served. pithead's own API (`pithead.web.api`) is not changed by it.
"""
