"""`pithead ledger`: read the pool's book from the command line, and run its housekeeping by hand.

    pithead ledger summary  [--database URL | --config FILE] [--data-dir D] [--json]
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

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
    where = data_dir or cfg.data_dir
    missing = _missing_ledger(url, where, given=data_dir is not None)
    if missing:  # a read must not leave an empty ledger behind (a mistyped --data-dir looked like "no blocks")
        typer.echo(missing, err=True)
        raise typer.Exit(1)
    try:
        store = open_store(url, data_dir=where)
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


def _missing_ledger(url: str, data_dir: str, given: bool) -> str | None:
    """Why there is no ledger to open here, or None. A data directory that does not exist, or an SQLite file
    that does not, is said so: opening it would create an empty ledger and every read would show nothing.
    (A PostgreSQL ledger is found by its URL, not in the data directory.)"""
    if given and not Path(data_dir).is_dir():
        return f"no such data directory: {data_dir} (pass the directory `pithead up` or `serve` wrote its ledger to)"
    if urlsplit(url).scheme != "sqlite":
        return None
    raw = url[len("sqlite://") :]
    if raw in ("", "/", ":memory:", "/:memory:"):
        return None
    path = Path(raw[1:] if raw.startswith("/") else raw)
    if not path.is_absolute():
        path = Path(data_dir) / path
    if not path.parent.is_dir():
        return f"no such data directory: {path.parent} (the ledger would be {path})"
    if not path.exists():
        return f"no ledger at {path}: nothing has been recorded there (is --data-dir or --database right?)"
    return None


def _rate(hps: float) -> str:
    for unit, scale in (("EH/s", 1e18), ("PH/s", 1e15), ("TH/s", 1e12), ("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)):
        if hps >= scale:
            return f"{hps / scale:.2f} {unit}"
    return f"{hps:.0f} H/s"


def _summary_dict(s: Any, stuck: list[Any]) -> dict[str, Any]:
    return {
        "scheme": str(s.scheme), "fee_percent": s.fee_ppm / 10_000, "workers": s.workers,
        "workers_online": s.workers_online,
        "hashrate": {str(w): {"hashrate": e.hashrate, "low": e.low, "high": e.high, "shares": e.shares,
                              "reliable": e.reliable} for w, e in s.stats.hashrate.items()},
        "blocks": {str(k): v for k, v in s.blocks.items()}, "network_difficulty": s.network_difficulty,
        "raw_shares": s.raw_shares, "immature_sat": s.immature_sat, "payable_sat": s.payable_sat,
        "paid_sat": s.paid_sat, "pool_account_sat": s.pool_account_sat,
        "stuck_batches": len(stuck), "stuck_sat": sum(b.total_sat for b in stuck),
    }


@app.command()
def summary(database: str | None = _DB, config: str | None = _CONFIG, data_dir: str | None = _DATA,
            as_json: bool = typer.Option(False, "--json", help="One JSON object, for scripts.")) -> None:
    """Pool hashrate (with its 90 % interval), workers, blocks and money, as tables (`--json` for scripts)."""
    store, ledger = _open(database, config, data_dir)
    try:
        s = ledger.pool_summary(time.time())
        stuck = store.batches([BatchStatus.STUCK])
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(_summary_dict(s, stuck), indent=2))
        return
    console = Console(width=max(100, Console().width))
    pool = Table("scheme", "fee", "workers online", "network difficulty", "raw shares kept", title="pool")
    pool.add_row(str(s.scheme), f"{s.fee_ppm / 10_000:g} %", f"{s.workers_online}/{s.workers}",
                 f"{s.network_difficulty:,.6g}" if s.network_difficulty else "-", str(s.raw_shares))
    console.print(pool)
    rates = Table("window", "hashrate", "90 % interval", "shares", "note", title="hashrate")
    for window, e in s.stats.hashrate.items():
        rates.add_row(f"{window} s", _rate(e.hashrate), f"{_rate(e.low)} .. {_rate(e.high)}", str(e.shares),
                      "" if e.reliable else "too few shares: not a reliable estimate")
    console.print(rates)
    blocks_t = Table("status", "blocks", title="blocks")
    for status, n in sorted(s.blocks.items()):
        blocks_t.add_row(str(status), str(n))
    if not s.blocks:
        blocks_t.add_row("(none yet)", "0")
    console.print(blocks_t)
    money = Table("immature", "payable", "paid", "pool account", title="money (sat)")
    money.add_row(str(s.immature_sat), str(s.payable_sat), str(s.paid_sat), str(s.pool_account_sat))
    console.print(money)
    if stuck:  # sent, out of the mempool, unconfirmed: held until they confirm or can no longer
        typer.echo(f"payouts STUCK: {len(stuck)} batch(es), {sum(b.total_sat for b in stuck)} sat held "
                   "(see `pithead ledger payouts`)")


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
