"""`pithead ledger`: read the pool's book from the command line, and run its housekeeping by hand.

    pithead ledger summary  [--database URL | --config FILE] [--data-dir D]
    pithead ledger blocks   [--limit N]
    pithead ledger balances
    pithead ledger payouts  [--limit N]
    pithead ledger workers  [--address A]
    pithead ledger rollup

The database comes from `--database`, else the config's `[ledger] database` (relative SQLite paths are
under the data directory). Everything except `rollup` only reads. Amounts are printed in satoshis.
This is not the payout runner (that is `run_ledger`, started by `pithead up`; a standalone `pithead pool`
runs none).
"""

from __future__ import annotations

import time

import typer

from pithead import config as config_mod
from pithead.ledger.ledger import Ledger, LedgerError, LedgerSettings
from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus

app = typer.Typer(help="Read the pool's ledger (shares, blocks, balances, payouts).", add_completion=False,
                  no_args_is_help=True)

_DB = typer.Option(None, "--database", help="sqlite:///path or postgresql://... (default: from the config)")
_CONFIG = typer.Option(None, "--config", "-c", help="TOML config file.")
_DATA = typer.Option(None, "--data-dir", "-d", help="Data directory (default: from the config).")


def _open(database: str | None, config: str | None, data_dir: str | None) -> tuple[LedgerStore, Ledger]:
    try:
        cfg = config_mod.load(config)
    except config_mod.ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    url = database or cfg.ledger.database
    try:
        store = open_store(url, data_dir=data_dir or cfg.data_dir)
    except StoreError as exc:
        typer.echo(f"cannot open the ledger: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        settings = LedgerSettings.from_config(cfg.ledger)
    except (LedgerError, ValueError) as exc:
        store.close()
        typer.echo(f"bad [ledger] settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    return store, Ledger(store, settings)


def _rate(hps: float) -> str:
    for unit, scale in (("EH/s", 1e18), ("PH/s", 1e15), ("TH/s", 1e12), ("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)):
        if hps >= scale:
            return f"{hps / scale:.2f} {unit}"
    return f"{hps:.0f} H/s"


@app.command()
def summary(database: str | None = _DB, config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Pool hashrate (with its 90 % interval), workers, blocks and money."""
    store, ledger = _open(database, config, data_dir)
    try:
        s = ledger.pool_summary(time.time())
        typer.echo(f"scheme {s.scheme}, fee {s.fee_ppm / 10_000:g} %, workers {s.workers_online}/{s.workers} online")
        for window, e in s.stats.hashrate.items():
            flag = "" if e.reliable else f"  (only {e.shares} shares: not a reliable estimate)"
            typer.echo(f"  {window:>6} s  {_rate(e.hashrate):>12}  [{_rate(e.low)} .. {_rate(e.high)}]{flag}")
        typer.echo(f"blocks {s.blocks or '{}'}; raw shares kept {s.raw_shares}")
        typer.echo(f"immature {s.immature_sat} sat, payable {s.payable_sat} sat, paid {s.paid_sat} sat, "
                   f"pool account {s.pool_account_sat} sat")
        stuck = store.batches([BatchStatus.STUCK])
        if stuck:  # sent, out of the mempool, unconfirmed: held until they confirm or can no longer
            typer.echo(f"payouts STUCK: {len(stuck)} batch(es), {sum(b.total_sat for b in stuck)} sat held "
                       "(see `pithead ledger payouts`)")
    finally:
        store.close()


@app.command()
def blocks(limit: int = typer.Option(20, "--limit"), database: str | None = _DB, config: str | None = _CONFIG,
           data_dir: str | None = _DATA) -> None:
    """Blocks found, newest first."""
    store, _ = _open(database, config, data_dir)
    try:
        for b in store.blocks(limit):
            typer.echo(f"{b.height:>8} {b.hash} {b.status:<9} conf {b.confirmations:>4} {b.reward_sat:>12} sat {b.worker}")
    finally:
        store.close()


@app.command()
def balances(database: str | None = _DB, config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Every address's immature, payable, reserved and paid satoshis."""
    store, _ = _open(database, config, data_dir)
    try:
        for b in store.balances():
            typer.echo(f"{b.address:<64} immature {b.immature_sat:>12} payable {b.payable_sat:>12} "
                       f"reserved {b.reserved_sat:>12} paid {b.paid_sat:>12}")
    finally:
        store.close()


@app.command()
def payouts(limit: int = typer.Option(20, "--limit"), database: str | None = _DB, config: str | None = _CONFIG,
            data_dir: str | None = _DATA) -> None:
    """Payout batches, newest first."""
    store, _ = _open(database, config, data_dir)
    try:
        for p in store.batches(limit=limit):
            typer.echo(f"#{p.id:<5} {p.status:<9} {p.total_sat:>12} sat to {len(p.items)} addresses "
                       f"txid {p.txid or '-'}{'  error: ' + p.error if p.error else ''}")
    finally:
        store.close()


@app.command()
def workers(address: str | None = typer.Option(None, "--address"), database: str | None = _DB,
            config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Workers with their share counts, best share and last share time."""
    store, _ = _open(database, config, data_dir)
    try:
        for w in store.workers(address):
            last = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(w.last_share_time)) if w.last_share_time else "-"
            typer.echo(f"{w.worker:<72} accepted {w.accepted:>9} rejected {w.rejected:>7} best {w.best_share:>14.6g} "
                       f"last {last}")
    finally:
        store.close()


@app.command()
def rollup(database: str | None = _DB, config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Prune raw shares past the reward window and coarsen old statistics now."""
    store, ledger = _open(database, config, data_dir)
    try:
        r = ledger.rollup(time.time())
        typer.echo(f"pruned {r.shares_deleted} shares, coarsened {r.buckets_coarsened} buckets, "
                   f"dropped {r.buckets_deleted}")
    finally:
        store.close()
