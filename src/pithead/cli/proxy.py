"""`pithead proxy`: the farm proxy, and the operator's commands for a running one.

    pithead proxy run --config FILE [--bind ADDR] [--port N] [--api-port N] [--verbose]
    pithead proxy status [--config FILE | --api URL] [--machines] [--json]
    pithead proxy switch NAME|auto      pin the machines to upstream NAME (auto: priorities and health)
    pithead proxy drain NAME            move the machines off NAME now (its shares in flight are answered)
    pithead proxy resume NAME           put a drained upstream back

`run` needs `[proxy]` with at least one `[[proxy.upstreams]]` (flags are the config's keys with dashes and
override it). The other commands talk to the running proxy's HTTP API (`pithead.web.proxy`) at `--api`, by
default `http://[proxy] api_bind:api_port`; its actions need the token of `[proxy] api_token_file` (read
from `--token-file`, default that same file) unless they come from the proxy's own machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import typer

from pithead.app.lifecycle import EXIT_CONFIG, EXIT_FAILED, run_command
from pithead.app.proxy import serve
from pithead.config import ConfigError, load

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The farm proxy: run it, and look at or steer a running one.")

API_TIMEOUT_S = 10.0
"""How long a command waits for the running proxy's API (it answers from memory, in milliseconds)."""


@app.command()
def run(
    config: str | None = typer.Option(None, "--config", "-c", help="TOML config with [proxy] and [[proxy.upstreams]]."),
    bind: str | None = typer.Option(None, "--bind", help="Address machines connect to (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Stratum port for the machines (default 3334)."),
    api_port: int | None = typer.Option(None, "--api-port", help="Port of the operator API (default 8090)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the farm proxy: the machines mine to it, it mines to the upstream pools with failover."""
    try:
        cfg = load(config, overrides={"proxy": {"bind": bind, "port": port, "api_port": api_port}}).proxy
    except ConfigError as exc:
        typer.echo(f"pithead proxy: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc

    async def main(stop: asyncio.Event) -> None:
        await serve(cfg, on_listening=typer.echo, stop=stop)

    run_command("pithead proxy", main, log_level=logging.INFO if verbose else logging.WARNING, quiet_stop=True)


def _target(config: str | None, api: str | None, token_file: str | None) -> tuple[str, str | None]:
    """The API's base URL and the token to send (None: none configured)."""
    try:
        cfg = load(config).proxy
    except ConfigError as exc:
        typer.echo(f"pithead proxy: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    base = api or f"http://{cfg.api_bind}:{cfg.api_port}"
    path = token_file or cfg.api_token_file
    token = None
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            typer.echo(f"pithead proxy: cannot read the token file {path}: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
    return base.rstrip("/"), token


def _call(method: str, base: str, path: str, token: str | None, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, base + path, json=body, headers=headers, timeout=API_TIMEOUT_S)
    except httpx.HTTPError as exc:
        typer.echo(f"pithead proxy: no proxy API at {base}: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        typer.echo(f"pithead proxy: {detail} (HTTP {r.status_code})", err=True)
        raise typer.Exit(EXIT_FAILED)
    return r.json()


def _rate(hps: float | None) -> str:
    if hps is None:
        return "-"
    value = float(hps)
    for unit in ("", "k", "M", "G", "T", "P", "E"):
        if abs(value) < 1000:
            return f"{value:.3g} {unit}H/s"
        value /= 1000
    return f"{value:.3g} ZH/s"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def print_status(st: dict[str, Any]) -> None:
    """The status as an operator reads it: the choice of pool, then one block per upstream."""
    pin = f", pinned to {st['pinned']}" if st["pinned"] else ""
    drained = f", draining {', '.join(st['draining'])}" if st["draining"] else ""
    typer.echo(f"mining on {st['active'] or '(none)'}{pin}{drained}: {st['reason']}")
    m = st["machines"]
    typer.echo(f"machines {m['ready']} mining ({m['connected']} connected) at {st['stratum_url']}; "
               f"{st['upstream_connections']} upstream connections; {st['failovers']} failovers")
    for up in st["upstreams"]:
        s = up["shares"]
        five = next((h for h in up["hashrate"] if h["window"] == "5m"), None)
        rate = "-" if five is None else (f"{_rate(five['hashrate_hps'])} [{_rate(five['low_hps'])} - "
                                         f"{_rate(five['high_hps'])}]")
        ready = sum(1 for c in up["connections"] if c["ready"])
        typer.echo(f"  {up['name']:<12} {up['state']:<9} {up['url']}  connections {ready}/{len(up['connections'])}"
                   f"  difficulty {up['difficulty'] if up['difficulty'] is not None else '-'}")
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items())) or "0"
        lost = sum(s["lost"].values())
        typer.echo(f"      forwarded {s['forwarded']}  accepted {s['accepted']}  rejected {rejected}  "
                   f"stale {s['stale']}  lost {lost}  in flight {s['in_flight']}  "
                   f"latency p50 {_ms(up['latency']['p50_s'])} p99 {_ms(up['latency']['p99_s'])}  credited 5m {rate}")
        if up["problem"]:
            typer.echo(f"      problem: {up['problem']}")


_CONFIG = typer.Option(None, "--config", "-c", help="The proxy's config (for its API address and token).")
_API = typer.Option(None, "--api", help="The proxy's API, e.g. http://127.0.0.1:8090 (default from the config).")
_TOKEN = typer.Option(None, "--token-file", help="A file holding the API token (default [proxy] api_token_file).")


@app.command()
def status(
    config: str | None = _CONFIG, api: str | None = _API, token_file: str | None = _TOKEN,
    show_machines: bool = typer.Option(False, "--machines", help="Also list every machine."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON as it is."),
) -> None:
    """Show the upstreams, which one the machines mine on and why, and what each pool credits."""
    base, token = _target(config, api, token_file)
    st = _call("GET", base, "/proxy/api/status", token)
    listed = _call("GET", base, "/proxy/api/machines", token) if show_machines else None
    if as_json:
        typer.echo(json.dumps(st if listed is None else {**st, "machine_list": listed}, indent=2))
        return
    print_status(st)
    for mach in listed or []:
        pool = mach["pool"] or {}
        five = next((h for h in pool.get("hashrate", []) if h["window"] == "5m"), None)
        rate = "-" if five is None else f"{_rate(five['hashrate_hps'])} [{_rate(five['low_hps'])} - {_rate(five['high_hps'])}]"
        typer.echo(f"  {mach['worker']:<32} on {mach['upstream'] or '-'}  difficulty {mach['difficulty']}  "
                   f"accepted upstream {pool.get('accepted', 0)}  rejected {sum(pool.get('rejected', {}).values())}  "
                   f"credited 5m {rate}")


def _act(kind: str, name: str, config: str | None, api: str | None, token_file: str | None) -> None:
    base, token = _target(config, api, token_file)
    print_status(_call("POST", base, f"/proxy/api/{kind}", token, {"upstream": name}))


@app.command()
def switch(name: str = typer.Argument(..., help="An upstream's name, or auto."),
           config: str | None = _CONFIG, api: str | None = _API, token_file: str | None = _TOKEN) -> None:
    """Pin the machines to upstream NAME (it takes them as soon as it is healthy), or `auto`."""
    _act("switch", name, config, api, token_file)


@app.command()
def drain(name: str = typer.Argument(..., help="An upstream's name."),
          config: str | None = _CONFIG, api: str | None = _API, token_file: str | None = _TOKEN) -> None:
    """Move the machines off upstream NAME now; shares already sent to it are still answered."""
    _act("drain", name, config, api, token_file)


@app.command()
def resume(name: str = typer.Argument(..., help="An upstream's name."),
           config: str | None = _CONFIG, api: str | None = _API, token_file: str | None = _TOKEN) -> None:
    """Put a drained upstream back in use."""
    _act("resume", name, config, api, token_file)
