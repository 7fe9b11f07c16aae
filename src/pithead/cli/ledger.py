"""`pithead ledger`: read the pool's book from the command line, and run its housekeeping by hand.

    pithead ledger summary  [--database URL | --config FILE] [--data-dir D]
    pithead ledger blocks   [--limit N]
    pithead ledger balances
    pithead ledger payouts  [--limit N]
    pithead ledger workers  [--address A]
    pithead ledger rollup
    pithead ledger withholding          flagged and least likely workers (blocks expected, found, P)
    pithead ledger hold WORKER --reason R [--actor A]     hold a flagged worker's payouts (pool mode; audited)
    pithead ledger release WHO --reason R [--actor A]     lift a hold (audited)
    pithead ledger holds                the holds and their audit log

The database comes from `--database`, else the config's `[ledger] database` (relative SQLite paths are
under the data directory). Everything except `rollup`, `hold` and `release` only reads. Amounts are printed in satoshis.
This is not the payout runner (that is `run_ledger`, started by `pithead up`; a standalone `pithead pool`
runs none).
"""

from __future__ import annotations

import getpass
import json
import time

import typer

from pithead import config as config_mod
from pithead.ledger import withholding
from pithead.ledger.ledger import MAX_QUERY_ROWS, Ledger, LedgerError, LedgerSettings
from pithead.ledger.payouts import HoldError, hold_payouts, release_payouts
from pithead.ledger.store import StoreError, open_store
from pithead.ledger.store.base import LedgerStore
from pithead.ledger.store.records import BatchStatus, OddsKind

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


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t else "-"


@app.command("withholding")
def withholding_report(limit: int = typer.Option(20, "--limit"), database: str | None = _DB,
                       config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Flagged workers and addresses, then the workers least likely for an honest miner: blocks expected
    from their share work, blocks found, P(X <= k), the anytime p that flags, and any payout hold."""
    store, ledger = _open(database, config, data_dir)
    try:
        level = ledger.settings.withholding_level
        held = {h.address for h in store.payout_holds()}
        typer.echo(f"level {level:g}: a full withholder is flagged after {withholding.min_expected_blocks(level):.2f} "
                   "blocks of its own work")
        flagged = store.flagged_odds(limit)
        ranked = sorted(store.odds_by_deficit(OddsKind.WORKER, MAX_QUERY_ROWS),
                        key=lambda r: withholding.poisson_cdf(r.found, r.expected))[:limit]
        seen: set[tuple[OddsKind, str]] = set()
        for r in [*flagged, *ranked]:
            if (r.kind, r.name) in seen:
                continue
            seen.add((r.kind, r.name))
            o = withholding.assess(r.expected, r.found)
            address = r.name if r.kind is OddsKind.ADDRESS else getattr(store.worker(r.name), "address", "")
            state = f"FLAGGED since {_when(r.flagged_since)}" if r.flagged_since is not None else "ok"
            typer.echo(f"{r.kind:<7} {r.name:<72} expected {r.expected:>10.2f} found {r.found:>6} "
                       f"P {o.p_value:>9.3g} anytime {o.anytime_p:>9.3g}  {state}"
                       f"{'  payouts HELD' if address in held else ''}")
    finally:
        store.close()


_REASON = typer.Option(..., "--reason", help="Why (kept in the audit log).")
_ACTOR = typer.Option(None, "--actor", help="Who is acting (default: your user name); kept in the audit log.")


@app.command()
def hold(worker: str, reason: str = _REASON, actor: str | None = _ACTOR, database: str | None = _DB,
         config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Hold the payouts of a worker (its address) flagged as withholding blocks. Pool mode only; audited."""
    try:
        mode = config_mod.load(config).pool.mode
    except config_mod.ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    store, _ = _open(database, config, data_dir)
    try:
        entry = hold_payouts(store, worker, actor=actor or getpass.getuser(), reason=reason, auth="cli",
                             now=time.time(), mode=mode)
    except HoldError as exc:
        typer.echo(f"not held: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(f"payouts of {entry.address} held (audit #{entry.id}); release with `pithead ledger release "
               f"{entry.address} --reason ...`")


@app.command()
def release(who: str, reason: str = _REASON, actor: str | None = _ACTOR, database: str | None = _DB,
            config: str | None = _CONFIG, data_dir: str | None = _DATA) -> None:
    """Lift the payout hold of an address (or a worker's address); audited."""
    store, _ = _open(database, config, data_dir)
    try:
        entry = release_payouts(store, who, actor=actor or getpass.getuser(), reason=reason, auth="cli",
                                now=time.time())
    except HoldError as exc:
        typer.echo(f"not released: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(f"payouts of {entry.address} released (audit #{entry.id}); paid at the next payout run")


@app.command()
def holds(limit: int = typer.Option(20, "--limit"), database: str | None = _DB, config: str | None = _CONFIG,
          data_dir: str | None = _DATA) -> None:
    """The addresses whose payouts are held, then the holds' audit log, newest first."""
    store, _ = _open(database, config, data_dir)
    try:
        for h in store.payout_holds():
            typer.echo(f"HELD {h.address:<64} since {_when(h.since)} by {h.actor} for {h.worker}: {h.reason}")
        for e in store.payout_hold_log(limit):
            evidence = json.loads(e.evidence)
            ev = evidence.get("worker") or evidence.get("address") or {}
            figures = f"expected {ev.get('expected', 0):.2f} found {ev.get('found', 0)}" if ev else ""
            typer.echo(f"#{e.id:<5} {_when(e.time)} {e.action:<7} {e.address} by {e.actor} ({e.auth}): {e.reason}"
                       f"  [{figures}]")
    finally:
        store.close()
