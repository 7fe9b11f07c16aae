"""`pithead farm sim`: the Typer app lists models and refuses bad fleet descriptions."""

from __future__ import annotations

from typer.testing import CliRunner

from pithead.cli.fleetsim import app

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


def test_record_then_replay_a_live_run(tmp_path) -> None:
    """A live run with one operator action, recorded on exit, replays to the same state."""
    import asyncio
    import os
    import re
    import signal
    import subprocess
    import sys

    from pithead.farm.protocol.cgminer import wire as cg

    rec = tmp_path / "run.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pithead.cli.fleetsim import app; app()",
            "run",
            "-n",
            "12",
            "--mix",
            "s19:1",
            "--network",
            "127.16.9.0/24",
            "--api-port",
            "0",
            "--web-port",
            "0",
            "--status-every",
            "0",
            "--seed",
            "77",
            "--record",
            str(rec),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"api :(\d+)", line)
        assert m, line
        port = int(m.group(1))

        async def restart() -> bytes:
            reader, writer = await asyncio.open_connection("127.16.9.3", port)
            writer.write(cg.encode_request("restart"))
            await writer.drain()
            data = await reader.read()
            writer.close()
            return data

        assert cg.decode_reply(asyncio.run(restart())) == {"STATUS": "RESTART"}
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert "recorded 1 actions" in out
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    r1 = runner.invoke(app, ["replay", str(rec), "--device", "127.16.9.3", "--device", "127.16.9.4"])
    r2 = runner.invoke(app, ["replay", str(rec), "--device", "127.16.9.3", "--device", "127.16.9.4"])
    assert r1.exit_code == 0, r1.output
    assert r1.output == r2.output
    assert "127.16.9.3: online=False" in r1.output  # still booting when the run ended
    assert "127.16.9.4: online=True hashing=True" in r1.output
    assert "11/12 hashing, 1 rebooting" in r1.output
    later = runner.invoke(app, ["replay", str(rec), "--at", "3600", "--device", "127.16.9.3"])
    assert "127.16.9.3: online=True hashing=True" in later.output


def test_action_records_round_trip() -> None:
    from pithead.fleetsim.device import PoolConf
    from pithead.fleetsim.fleet import Action

    a = Action(5.5, "127.16.0.1", "set_pools", ((PoolConf("stratum+tcp://h:1", "u", "p"),), True))
    assert Action.from_json(a.to_json()) == a
    b = Action(6.0, "127.16.0.1", "switchpool", (1,))
    assert Action.from_json(b.to_json()) == b
