"""The node's shape as tests: no module cycle inside `pithead.node` (the `node-acyclic` contract in
pyproject.toml, shown to break on a copy of the tree), and the RPC table (rpc/server.py) listing every
method module's commands once, each handler taking exactly the arguments its command declares."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pithead.node.rpc import (
    blockchain,
    control,
    fees,
    mempool,
    mining,
    network,
    output_script,
    rawtransactions,
    server,
    wallet,
    zmqrpc,
)
from pithead.node.rpc.util import ACCEPTS, Arg, Command

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
METHOD_MODULES = (
    blockchain,
    mempool,
    mining,
    rawtransactions,
    network,
    output_script,
    fees,
    control,
    zmqrpc,
    wallet,
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, env=env
    )


def test_a_module_cycle_inside_the_node_breaks_its_contract(tmp_path: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    shutil.copytree(ROOT / "src" / "pithead", tmp_path / "src" / "pithead", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # the two cycles the node once had: the mempool asking the assembler, the RPC methods importing the node
    with open(tmp_path / "src/pithead/node/mempool.py", "a") as f:
        f.write("\nfrom pithead.node import assembler  # a cycle\n")
    with open(tmp_path / "src/pithead/node/rpc/util.py", "a") as f:
        f.write("\nfrom pithead.node.node import EmbeddedNode  # a cycle\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "No cycles are allowed in pithead.node." in result.stdout, result.stdout
    assert ".mempool -> .assembler" in result.stdout and ".rpc -> .node" in result.stdout, result.stdout


def test_the_table_holds_every_module_command_once() -> None:
    listed = [c for module in METHOD_MODULES for c in module.COMMANDS]
    assert len({c.name for c in listed}) == len(listed)
    assert dict(server.TABLE) == {c.name: c for c in listed}
    assert server.WALLET_METHODS == {c.name for c in wallet.COMMANDS} - {"listwallets"}
    with pytest.raises(ValueError, match="listed twice"):
        server.build_table(control.COMMANDS, control.COMMANDS)


@pytest.mark.parametrize("command", list(server.TABLE.values()), ids=lambda c: c.name)
def test_each_handler_takes_exactly_its_declared_arguments(command: Command) -> None:
    """The node first, then one keyword per `Arg`; required arguments have no default, optional ones do
    (the dispatcher leaves an absent one out, so the handler's default is Core's default)."""
    assert command.handler.__name__ == command.name
    assert inspect.iscoroutinefunction(command.handler)
    params = list(inspect.signature(command.handler).parameters.values())
    assert params[0].name == "node"
    by_name = {p.name: p for p in params[1:]}
    assert set(by_name) == {a.name for a in command.args}
    for arg in command.args:
        assert arg.kind in ACCEPTS
        has_default = by_name[arg.name].default is not inspect.Parameter.empty
        assert has_default != arg.required, f"{command.name}({arg.name})"


def test_usage_line_is_cores() -> None:
    args = (Arg("blockhash", "str", True), Arg("verbose", "bool"))
    cmd = Command("getblockheader", blockchain.getblockheader, args)
    assert cmd.usage() == 'getblockheader "blockhash" ( "verbose" )'
    assert server.TABLE["getblockcount"].usage() == "getblockcount"
