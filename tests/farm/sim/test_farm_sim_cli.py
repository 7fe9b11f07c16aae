"""`pithead farm sim`: the Typer app lists models and refuses bad fleet descriptions."""

from __future__ import annotations

from typer.testing import CliRunner

from pithead.farm.sim.cli import app

runner = CliRunner()


def test_models_lists_every_model() -> None:
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0
    for key in ("s19 ", "s19xp", "s21", "bitaxe-gamma"):
        assert key in r.output
    assert "no power reading" in r.output  # stock S19 / S19 XP


def test_run_refuses_bad_mix_and_bind() -> None:
    r = runner.invoke(app, ["run", "--mix", "s99:1"])
    assert r.exit_code != 0 and "unknown model" in r.output
    r = runner.invoke(app, ["run", "--bind", "everywhere"])
    assert r.exit_code != 0
