"""`pithead.config.load` refuses a setting of the wrong TOML type with a ConfigError naming it.

Operator QA: `[web] port = "x"` made `pithead up` crash with a TypeError traceback from deep inside the
web server's start instead of saying which setting was wrong.
"""

from __future__ import annotations

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
    ('[pool]\n[[pool.nodes]]\nurl = "http://127.0.0.1:1"\npriority = "0"\n', "pool.nodes[].priority"),
    ('data_dir = 3\n', "data_dir"),
])
def test_wrong_types_are_config_errors(tmp_path: Path, toml: str, setting: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=rf"setting {__import__('re').escape(setting)} must be"):
        load(p)


def test_right_types_load(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[pool]\nshare_interval = 5\nmin_difficulty = 0.001\n[node]\nrpc_user = "u"\n'
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
