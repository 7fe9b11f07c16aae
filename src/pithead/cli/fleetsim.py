"""`pithead farm sim`: serve a simulated fleet (stock Antminers and Bitaxes) on loopback addresses.

`pithead farm sim run -n 24000` starts the devices on 127.16.0.1 … (cgminer/btminer API on 4028, web on
80; add Whatsminers with e.g. `--mix s19xp:4,m30s:2,bitaxe-gamma:1`),
optionally lets a fraction of them mine against their configured pool (`--mine 0.01 --pool …`), and
prints a status line every few seconds with the *simulated* (device-reported) fleet hashrate next to
the *real* hashing the pool sees — never mixed up. `pithead farm sim models` lists the device models.

This module only parses options and wires `Fleet`, `FleetServer` and `MiningBridge` together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
from pathlib import Path
from typing import Any

import typer

from pithead.app.lifecycle import StartError, run_command
from pithead.fleetsim.clock import ManualClock, SimClock
from pithead.fleetsim.device import PoolConf
from pithead.fleetsim.fleet import DEFAULT_NETWORK, Action, Fleet, FleetConfigError
from pithead.fleetsim.mining import MiningBridge, choose_miners
from pithead.fleetsim.models import MODELS, FailureRates
from pithead.fleetsim.server import FleetServer, SimServerError

app = typer.Typer(no_args_is_help=True, help="The simulated fleet: cgminer-API Antminers and AxeOS Bitaxes.")


def _fmt_hps(hps: float) -> str:
    for div, unit in (
        (1e18, "EH/s"),
        (1e15, "PH/s"),
        (1e12, "TH/s"),
        (1e9, "GH/s"),
        (1e6, "MH/s"),
        (1e3, "kH/s"),
    ):
        if hps >= div:
            return f"{hps / div:.2f} {unit}"
    return f"{hps:.0f} H/s"


@app.command()
def models() -> None:
    """List the simulated device models and their nameplate figures."""
    for m in MODELS.values():
        power = "reports power" if m.reports_power else "no power reading (stock firmware)"
        typer.echo(
            f"{m.key:14} {m.type_string:17} {m.hashrate_ths:8.3f} TH/s {m.power_w:7.1f} W "
            f"{m.boards}x{m.chips_per_board} chips, {m.fans} fan(s), {power}"
        )


@app.command()
def run(
    count: int = typer.Option(100, "--count", "-n", help="Number of devices."),
    mix: str = typer.Option(
        "s19xp:4,s19:3,s21:2,bitaxe-gamma:1", help="Model mix, KEY:WEIGHT,... (see `models`)."
    ),
    seed: int = typer.Option(1, help="Seed: the same seed and actions replay the same run."),
    network: str = typer.Option(DEFAULT_NETWORK, help="Loopback network the device addresses come from."),
    api_port: int = typer.Option(4028, help="cgminer API port (pyasic and farm tools assume 4028)."),
    web_port: int = typer.Option(80, help="Web UI / AxeOS port (pyasic assumes 80)."),
    bind: str = typer.Option("auto", help="auto (per-device up to 400 devices on fixed ports, else shared), "
                             "shared (one wildcard socket per port, scales to 24,000) or per-device (one per "
                             "device address: runs beside other simulators on other networks)."),
    speed: float = typer.Option(1.0, help="Simulated seconds per real second."),
    failure_speedup: float = typer.Option(1.0, help="Multiply every failure rate (demos: 1000+)."),
    ambient: float = typer.Option(25.0, help="Base intake air temperature, °C."),
    pool: str = typer.Option("stratum+tcp://127.0.0.1:3333", help="Pool every device is configured with."),
    user: str = typer.Option("pithead", help="Pool user; each device appends .HOSTNAME as its worker."),
    read_only_api: bool = typer.Option(False, help="Deny privileged cgminer commands (stock api-allow)."),
    mine: float = typer.Option(0.0, help="Fraction of devices that really mine against their pool (0..1)."),
    share_difficulty: float = typer.Option(0.001, help="Share difficulty the mining devices ask for."),
    hash_duty: float = typer.Option(0.25, help="Fraction of one CPU spent hashing for the mining devices."),
    status_every: float = typer.Option(10.0, help="Seconds between status lines (0: none)."),
    record: Path | None = typer.Option(
        None,
        help="Write the fleet description and every operator action "
        "(JSON lines) here on exit, for `pithead farm sim replay`.",
    ),
) -> None:
    """Serve the simulated fleet until Ctrl-C."""
    if bind not in ("auto", "shared", "per-device"):
        raise typer.BadParameter("--bind is auto, shared or per-device")
    clock = SimClock(speed=speed)
    header: dict[str, Any] = {
        "count": count,
        "mix": mix,
        "seed": seed,
        "network": network,
        "start": clock.now(),
        "failure_speedup": failure_speedup,
        "ambient": ambient,
        "pool": pool,
        "user": user,
        "read_only_api": read_only_api,
    }
    fleet = _build(header, clock)

    async def main(stop: asyncio.Event) -> None:
        try:
            await _serve(fleet, api_port, web_port, bind, mine, share_difficulty, hash_duty, status_every, stop)
        except SimServerError as exc:
            raise StartError(str(exc)) from exc

    try:
        run_command("pithead farm sim", main, quiet_stop=True)
    finally:
        if record is not None:
            with record.open("w") as f:
                f.write(json.dumps({"fleet": header, "end": fleet.now()}) + "\n")
                for a in fleet.log:
                    f.write(json.dumps(a.to_json()) + "\n")
            typer.echo(f"recorded {len(fleet.log)} actions to {record}")


def _build(h: dict[str, Any], clock: SimClock | ManualClock) -> Fleet:
    try:
        return Fleet.build(
            int(h["count"]),
            str(h["mix"]),
            seed=int(h["seed"]),
            network=str(h["network"]),
            clock=clock,
            rates=FailureRates(speedup=float(h["failure_speedup"])),
            pools=(PoolConf(str(h["pool"]), str(h["user"])),),
            base_ambient_c=float(h["ambient"]),
            api_write_allowed=not h.get("read_only_api", False),
        )
    except (FleetConfigError, KeyError, TypeError, ValueError) as exc:
        raise typer.BadParameter(f"fleet description: {exc}") from exc


@app.command()
def replay(
    recording: Path = typer.Argument(..., help="A file written by `run --record`."),
    at: float | None = typer.Option(
        None, help="Simulated seconds after the start to report at (default: when the recorded run ended)."
    ),
    device: list[str] = typer.Option([], "--device", help="Also print this device's report (repeatable)."),
) -> None:
    """Rebuild a recorded run from its seed and actions and print the fleet as it was (exactly)."""
    try:
        lines = [json.loads(x) for x in recording.read_text().splitlines() if x.strip()]
        head = lines[0]["fleet"]
        end = float(lines[0]["end"])
        actions = [Action.from_json(x) for x in lines[1:]]
    except (OSError, ValueError, KeyError, TypeError, IndexError, FleetConfigError) as exc:
        raise typer.BadParameter(f"{recording}: not a recording ({exc})") from exc
    start = float(head["start"])
    fleet = _build(head, ManualClock(start))
    t = end if at is None else start + at
    fleet.replay([a for a in actions if a.t <= t])
    tot = fleet.totals(t)
    typer.echo(
        f"at +{t - start:.0f} s: simulated {_fmt_hps(tot['hashrate_ths'] * 1e12)}, {tot['power_kw']:.1f} kW, "
        f"{tot['hashing']}/{tot['devices']} hashing, {tot['rebooting']} rebooting"
    )
    faults = {
        "dead boards": sum(1 for d in fleet if d.dead_boards),
        "failed fans": sum(1 for d in fleet if d.failed_fans),
        "lost chips": sum(1 for d in fleet if d.lost_chips),
        "blocked airflow": sum(1 for d in fleet if d.hot_c),
        "half hashrate": sum(1 for d in fleet if d.throttled),
    }
    typer.echo("units with " + ", ".join(f"{k}: {v}" for k, v in faults.items()))
    for ip in device:
        try:
            snap = fleet.snapshot(ip, t)
        except KeyError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(
            f"{ip}: online={snap.online} hashing={snap.hashing} {snap.rate_avg_ghs / 1000:.2f} TH/s "
            f"{snap.power_w:.0f} W chips={[b.chips for b in snap.boards]} fans={list(snap.fans_rpm)} "
            f"errors={list(snap.errors)} accepted={snap.accepted}"
        )


async def _serve(
    fleet: Fleet,
    api_port: int,
    web_port: int,
    bind: str,
    mine: float,
    share_difficulty: float,
    hash_duty: float,
    status_every: float,
    stop: asyncio.Event,
) -> None:
    server = FleetServer(fleet, api_port=api_port, web_port=web_port, bind=bind)  # type: ignore[arg-type]
    await server.start()
    first, last = fleet.devices[0].ip, fleet.devices[-1].ip
    api_bound, web_bound = server.bound_ports()
    typer.echo(
        f"serving {len(fleet)} simulated devices {first} … {last} (api :{api_bound}, web :{web_bound}, "
        f"{server.bind} bind)"
    )
    bridge = None
    if mine > 0:
        miners = choose_miners(fleet, mine)
        bridge = MiningBridge(fleet, miners, share_difficulty=share_difficulty, hash_duty=hash_duty)
        await bridge.start()
        typer.echo(f"{len(miners)} devices mine for real against their configured pool")
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every if status_every > 0 else None)
            if status_every > 0 and not stop.is_set():
                tot = fleet.totals()
                rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                line = (
                    f"simulated (device-reported): {_fmt_hps(tot['hashrate_ths'] * 1e12)}, "
                    f"{tot['power_kw']:.1f} kW, {tot['hashing']}/{tot['devices']} hashing, "
                    f"{tot['rebooting']} rebooting | served {server.stats.requests} requests | "
                    f"max RSS {rss_mb:.0f} MB"
                )
                if bridge is not None:
                    s = bridge.stats
                    line += (
                        f" | real hashing towards the pool: {s.connected} connected, "
                        f"{s.accepted} accepted / {s.rejected} rejected shares, pool-side "
                        f"{_fmt_hps(s.pool_side_hps())} (local {_fmt_hps(s.local_hps())})"
                    )
                typer.echo(line)
    finally:
        if bridge is not None:
            await bridge.close()
        await server.close()
