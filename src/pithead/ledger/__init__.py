"""pithead.ledger: the pool's book — shares, blocks, rewards, maturity, payouts and statistics.

* `events`   the pool → ledger interface (`ShareEvent`, `BlockEvent`, `ShareSink`) and its validation;
* `schemes`  SOLO / PROP / PPLNS / PPS as pure functions in integer satoshis;
* `stats`    hashrate from shares with its Poisson 90 % interval;
* `withholding` blocks expected from share work against blocks found: the withholding flag, the pool's luck;
* `uptime`   when the pool was up (runs kept by a heartbeat): the observed part of a hashrate window;
* `ledger`   the `Ledger` service: applies event batches, credits blocks, rolls up, answers queries;
* `bus`      `EventSource`, the in-process `MemoryBus`, the wire codec and the exactly-once consumer;
* `maturity` pending → confirmed / orphaned against a node (`ChainView`);
* `payouts`  batches paid with one `sendmany` each, crash-safe (`Wallet`, `RpcWallet`); operators' holds;
* `service`  the asyncio shell that runs all of it (`run_ledger`, `open_ledger`, `open_bus`).

Storage is `pithead.ledger.store` (SQLite or PostgreSQL behind `LedgerStore`, Redis Streams as the share bus).
Importing this package imports nothing heavy; import the module you need.
"""
