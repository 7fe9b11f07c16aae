"""The `pithead` command mounts every area and reports its version."""

from typer.testing import CliRunner

from pithead import __version__
from pithead.cli import _mount, app
from pithead.config import ConfigError, load


def test_version_command_prints_package_version() -> None:
    _mount()
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_config_rejects_unknown_keys(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[pool]\nport = 4444\nbogus = 1\n")
    try:
        load(p)
    except ConfigError as exc:
        assert "bogus" in str(exc)
    else:
        raise AssertionError("unknown key accepted")


def test_config_loads_sections(tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[pool]\nport = 4444\nmode = "pool"\n[[pool.nodes]]\nurl = "http://127.0.0.1:1"\npriority = 2\n')
    cfg = load(p)
    assert cfg.pool.port == 4444 and cfg.pool.mode == "pool"
    assert cfg.pool.nodes[0].url == "http://127.0.0.1:1" and cfg.pool.nodes[0].priority == 2
