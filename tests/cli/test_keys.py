"""`pithead keys new|show`: a new authority secret in a private file, never over an existing one, and
its public key in the spec's encoding (checked against SRI's published test keypair)."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from pithead.cli.main import _mount, app
from pithead.stratum.v2 import cert, secp256k1

_mount()
runner = CliRunner()

SRI_SECRET = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n"  # SRI's published test key (sv2-constants.json)
SRI_PUBLIC = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"


def test_new_writes_a_private_secret_and_prints_its_public_key(tmp_path: Path) -> None:
    key = tmp_path / "authority.key"
    result = runner.invoke(app, ["keys", "new", "--out", str(key)])
    assert result.exit_code == 0, result.output
    public = result.stdout.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = cert.decode_secret_key(key.read_text())
    assert cert.decode_public_key(public) == secp256k1.xonly_public(secret)
    shown = runner.invoke(app, ["keys", "show", str(key)])
    assert shown.exit_code == 0 and shown.stdout.strip() == public


def test_new_never_overwrites_a_key(tmp_path: Path) -> None:
    key = tmp_path / "authority.key"
    key.write_text("precious\n")
    result = runner.invoke(app, ["keys", "new", "--out", str(key)])
    assert result.exit_code == 2 and "not overwriting" in result.output
    assert key.read_text() == "precious\n"


def test_show_prints_the_public_key_of_sri_test_secret(tmp_path: Path) -> None:
    key = tmp_path / "sri.key"
    key.write_text(SRI_SECRET + "\n")
    result = runner.invoke(app, ["keys", "show", str(key)])
    assert result.exit_code == 0 and result.stdout.strip() == SRI_PUBLIC


def test_show_refuses_what_is_not_a_secret_key(tmp_path: Path) -> None:
    for content in (SRI_PUBLIC, "not base58 0OIl", "x" * 5000, "\xff"):
        key = tmp_path / "bad.key"
        key.write_text(content)
        result = runner.invoke(app, ["keys", "show", str(key)])
        assert result.exit_code == 2 and "not an authority secret key" in result.output, content
    missing = runner.invoke(app, ["keys", "show", str(tmp_path / "missing")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
