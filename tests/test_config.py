"""`pithead.config.load` refuses a setting of the wrong TOML type with a ConfigError naming it.

Operator QA: `[web] port = "x"` made `pithead up` crash with a TypeError traceback from deep inside the
web server's start instead of saying which setting was wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pithead.cli.main import _mount, app
from pithead.config import ConfigError, load


@pytest.mark.parametrize(("toml", "setting"), [
    ('[web]\nport = "x"\n', "web.port"),
    ("[web]\nport = 80.5\n", "web.port"),
    ("[web]\nport = true\n", "web.port"),  # a bool is not a port number
    ("[pool]\nmode = 1\n", "pool.mode"),
    ("[pool]\nshare_interval = \"10\"\n", "pool.share_interval"),
    ("[node]\nrpc_user = 5\n", "node.rpc_user"),
    ('[pool]\n[[pool.nodes]]\nurl = "http://127.0.0.1:1"\npriority = "0"\n', "pool.nodes[0].priority"),
    ('data_dir = 3\n', "data_dir"),
])
def test_wrong_types_are_config_errors(tmp_path: Path, toml: str, setting: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=rf"{__import__('re').escape(setting)}: must be"):
        load(p)


def test_right_types_load(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[pool]\nshare_interval = 5\nmin_difficulty = 0.001\n[node]\nrpc_user = "u"\nrpc_password = "p"\n'
                 '[web]\nport = 8081\n[farm]\nscan = ["127.0.0.1/32"]\n')
    cfg = load(p)
    assert cfg.pool.share_interval == 5 and cfg.pool.min_difficulty == 0.001  # an int where a float goes
    assert cfg.node.rpc_user == "u" and cfg.web.port == 8081


def test_up_says_which_setting_is_wrong(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[web]\nport = "x"\n')
    _mount()
    r = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path / "d"), "--config", str(p), "--duration", "1"])
    assert r.exit_code != 0
    assert "web.port" in r.output
    assert not isinstance(r.exception, TypeError)


# --- one validate(): every problem at once, each with its key; "did you mean" ----------------------------


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[pool]\nprot = 3334\nmode = "Pool"\nversion_mask = "xyz"\nfront_end = "3/2"\n'
                 '[ledgr]\nscheme = "pps"\n')
    with pytest.raises(ConfigError) as info:
        load(p)
    text = str(info.value)
    assert text.startswith(f"{p}: 5 problems:")
    assert "pool.prot: unknown setting; did you mean 'port'?" in text
    assert "ledgr: unknown setting; did you mean 'ledger'?" in text
    assert "pool.mode: must be 'solo' or 'pool', not str 'Pool'; did you mean 'pool'?" in text
    assert "pool.version_mask: must be 1..8 hex digits" in text
    assert "pool.front_end: '3/2': want 0 <= I < N <= 256" in text


def test_an_unknown_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[web]\nzzz = 1\n")
    with pytest.raises(ConfigError, match=r"web\.zzz: unknown setting \(known: bind, port, miningcore_pool_id\)"):
        load(p)


@pytest.mark.parametrize(("toml", "words"), [
    ('[pool]\nmode = "pool"\n', "pool.pool_address: pool mode needs"),
    ("[pool]\nmin_difficulty = 10.0\nmax_difficulty = 1.0\n", "pool.min_difficulty: is above max_difficulty"),
    ("[pool]\nextranonce2_size = 9\n", "pool.extranonce2_size: must be 2..8"),
    ("[pool]\nworkers = -1\n", "pool.workers: must be 0 (one per core) or more"),
    ("[pool]\nport = 70000\n", "pool.port: must be a TCP port"),
    ('[pool]\nnetwork = "testnet"\n', "pool.network: must be 'main' or 'test'"),
    ('[pool]\ncoinbase_tag = "' + "x" * 41 + '"\n', "pool.coinbase_tag: is longer than 40 bytes"),
    ('[[pool.nodes]]\nurl = "127.0.0.1:8332"\n', "pool.nodes[0].url: must be http://HOST:PORT"),
    ('[ledger]\npayouts = "wallet"\n', 'ledger.payouts: solo mode pays the block\'s finder'),
    ("[ledger]\npool_fee_percent = 100.0\n", "ledger.pool_fee_percent: must be 0 or more and under 100"),
    ('[ledger]\ndatabase = "mysql://x"\n', "ledger.database: must be sqlite:///PATH or postgresql://"),
    ('[ledger]\nshare_bus = "kafka://x"\n', 'ledger.share_bus: must be "memory" or redis://'),
    ("[farm]\nstrike_price = 80.0\n", "farm.strike_price: curtails above a price, so it needs price_schedule"),
    ('[farm]\ncentral = true\nforward_url = "http://c:8081"\n', "farm.central: a central takes readings"),
    ('[farm]\ndatabase = "mysql://db/farm"\n', "farm.database: must be sqlite:///PATH or postgresql://"),
    ("[farm]\nalert_group_min = 1\n", "farm.alert_group_min: must be 2 or more"),
    ("[farm]\nalert_clear_after = -1.0\n", "farm.alert_clear_after: must be 0 or more"),
    ("[farm]\nstatus_cache = -5.0\n", "farm.status_cache: must be 0 or more"),
    ("[farm]\npower_budget_kw = 500.0\n", 'farm.power_budget_kw: curtails by power: it needs curtailment = "power"'),
    ('[farm]\ncurtailment = "dimmer"\n', "farm.curtailment: must be 'onoff' or 'power'"),
    ('[farm]\ncurtailment = "power"\npower_budget_kw = -1.0\n', "farm.power_budget_kw: must be from 0 to"),
    ('[farm]\ncurtailment = "power"\npower_step_up_kw = 0.0\n', "farm.power_step_up_kw: must be more than 0"),
    ('[farm]\ncurtailment = "power"\nstrike_budget_kw = 5.0\n', "farm.strike_budget_kw: is the budget above strike_price"),
    ("[farm]\npower_hold_s = 0.0\n", "farm.power_hold_s: must be more than 0"),
    ('[node]\nrpc_password = "p"\n', "node.rpc_user: give rpc_user and rpc_password together"),
    ('[web]\nminingcore_pool_id = "BTC/1"\n', "web.miningcore_pool_id: must be 1-64 lower-case letters"),
])
def test_ranges_and_dependent_settings(tmp_path: Path, toml: str, words: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load(p)
    assert words in str(info.value)


def test_a_config_built_in_code_is_checked_the_same() -> None:
    from pithead.config import LedgerConfig, PoolConfig, validate

    with pytest.raises(ConfigError, match=r"pool\.mode: must be 'solo' or 'pool'"):
        validate(PoolConfig(mode="both"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ledger\.pplns_n: must be more than 0"):
        validate(LedgerConfig(pplns_n=0.0))
    validate(PoolConfig(mode="pool", pool_address="anything"))  # the address's network is the pool's to check


def test_overrides_are_keys_and_are_checked_like_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[pool]\nport = 4444\n")
    cfg = load(p, overrides={"pool": {"port": None, "bind": "0.0.0.0", "nodes": [
        {"url": "http://127.0.0.1:1", "cookie_file": None, "rpc_user": "u", "rpc_password": "p"}]}})
    assert cfg.pool.port == 4444  # a flag not given (None) changes nothing
    assert cfg.pool.bind == "0.0.0.0" and cfg.pool.nodes[0].rpc_user == "u"
    with pytest.raises(ConfigError, match=r"pool\.port: must be int"):
        load(p, overrides={"pool": {"port": "x"}})


# --- the example ---------------------------------------------------------------------------------------


def _example_lines() -> list[str]:
    from pithead.config import example

    return [line.strip().lstrip("#").strip() for line in example().splitlines()]


def test_the_example_names_every_key() -> None:
    """Every key of every section appears in the example, set or (for keys with no default value to
    write in TOML, such as an unset password) commented out, each followed by a comment or under one."""
    from pithead.config import keys

    lines = _example_lines()
    section = ""
    seen: set[str] = set()
    for line in lines:
        if line.startswith("[[") or line.startswith("["):
            section = line.strip("[]") + ("[]." if line.startswith("[[") else ".")
        elif "=" in line:
            seen.add(section + line.split("=", 1)[0].strip())
    assert set(keys()) <= {k.removeprefix(".") for k in seen}, sorted(set(keys()) - seen)


def test_the_example_loads_and_keeps_the_defaults() -> None:
    """The example is valid as it is, and every value it sets is the default, except the few it sets
    on purpose (a pool in pool mode with its regtest address, a node with its cookie and ZMQ)."""
    import dataclasses
    import tomllib

    from pithead.config import Config, PoolConfig, UpstreamNode, example, from_mapping

    cfg = from_mapping(tomllib.loads(example()))
    deliberate = {"mode": "pool", "pool_address": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
                  "nodes": (UpstreamNode(cookie_file="/home/bitcoin/.bitcoin/regtest/.cookie",
                                         zmq_hashblock="tcp://127.0.0.1:28332"),)}
    assert cfg.pool == dataclasses.replace(PoolConfig(), **deliberate)
    assert dataclasses.replace(cfg, pool=PoolConfig()) == Config()


def test_pithead_config_example_and_check(tmp_path: Path) -> None:
    from pithead.config import example

    _mount()
    r = CliRunner().invoke(app, ["config", "example"])
    assert r.exit_code == 0 and r.output == example()
    p = tmp_path / "pithead.toml"
    p.write_text(r.output)
    r = CliRunner().invoke(app, ["config", "check", str(p)])
    assert r.exit_code == 0 and f"{p}: ok (pool mode on regtest" in r.output
    p.write_text('[pool]\nmode = "pol"\n')
    r = CliRunner().invoke(app, ["config", "check", str(p)])
    assert r.exit_code == 2 and "did you mean 'pool'?" in r.output


def test_serve_accepts_the_example_as_it_is(tmp_path: Path) -> None:
    """`pithead serve --config` takes the example past every config check: what stops it is the node the
    example names (nobody answers at 127.0.0.1:18443 with that cookie here), status 1, not 2."""
    from pithead.app.production import run_serve
    from pithead.config import example

    p = tmp_path / "pithead.toml"
    p.write_text(example().replace('data_dir = "pithead-data"', f'data_dir = "{tmp_path / "data"}"')
                 .replace("port = 8080", "port = 0").replace("port = 3333", "port = 0"))
    lines: list[str] = []
    with pytest.raises(SystemExit) as info:
        run_serve(str(p), print_fn=lines.append, err_fn=lines.append)
    text = "\n".join(lines)
    assert info.value.code == 1, text
    assert "node http://127.0.0.1:18443" in text and "cookie" in text, text


# --- the pool's Stratum V2 endpoint -------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "problem"), [
    ({"sv2_port": 3336}, "pool.sv2_authority_secret_key_file: the Stratum V2 endpoint needs"),
    ({"sv2_port": 3333, "sv2_authority_secret_key_file": "k"}, "pool.sv2_port: is the V1 port"),
    ({"sv2_port": 70000, "sv2_authority_secret_key_file": "k"}, "pool.sv2_port: must be a TCP port"),
    ({"sv2_cert_validity": 10}, "pool.sv2_cert_validity: must be 60.."),
])
def test_the_sv2_settings_are_checked(extra: dict[str, object], problem: str) -> None:
    from pithead.config import ConfigError, PoolConfig, validate

    with pytest.raises(ConfigError, match=re.escape(problem)):
        validate(PoolConfig(**extra))  # type: ignore[arg-type]
    validate(PoolConfig(sv2_port=0, sv2_authority_secret_key_file="k"))  # any free port, with a key: fine


# --- the bad configurations of the reliability issue (finding 10), each one line, never a traceback --------


@pytest.mark.parametrize(("toml", "words"), [
    ('[pool]\nnodes = ["http://127.0.0.1:8332"]\n', "pool.nodes: must be a list of tables [[pool.nodes]]"),
    ('[pool]\nnodes = "http://127.0.0.1:8332"\n', "pool.nodes: must be a list of tables [[pool.nodes]]"),
    ("pool = 5\n", "pool: must be a table [pool], not int"),
    ("[pool]\nnodes = []\n", "pool.nodes: is empty"),
    ("[pool]\nport = 70000\n", "pool.port: must be a TCP port 0..65535"),
    ("[pool]\nport = -1\n", "pool.port: must be a TCP port 0..65535"),
    ("[pool]\nmax_connections_per_ip = 0\n", "pool.max_connections_per_ip: must be 1 or more"),
    ("[pool]\nhandshake_timeout = -5.0\n", "pool.handshake_timeout: must be more than 0"),
    ("[pool]\nidle_timeout = -1.0\n", "pool.idle_timeout: must be more than 0"),
    ('[pool]\ncoinbase_tag = "' + "t" * 300 + '"\n', "pool.coinbase_tag: is longer than 40 bytes"),
    ('[farm]\nscan = "10.0.0.0/8"\n', "farm.scan: must be a list of str, not str '10.0.0.0/8'"),
])
def test_the_issue_s_bad_configs_are_one_line_each(tmp_path: Path, toml: str, words: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load(p)
    assert words in str(info.value), str(info.value)


def test_pithead_pool_refuses_a_port_out_of_range_instead_of_wrapping_it(tmp_path: Path) -> None:
    """`port = 70000` on `pithead pool` used to listen on 4464 (70000 mod 65536)."""
    import subprocess
    import sys

    p = tmp_path / "c.toml"
    p.write_text("[pool]\nport = 70000\n")
    r = subprocess.run([sys.executable, "-m", "pithead.cli", "pool", "--config", str(p)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "pool.port: must be a TCP port" in r.stderr and "Traceback" not in r.stderr
    assert "listening" not in r.stdout
