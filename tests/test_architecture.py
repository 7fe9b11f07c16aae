"""The architecture is a test (docs/architecture.md): the import-linter contracts in pyproject.toml hold,
a wrong-way import breaks them (shown on a copy of the tree), and no pithead import hides inside a
function unless a comment on it says why (an optional dependency, start-up time, a child process)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "pithead"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if pythonpath is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_layers_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


def test_the_contracts_cover_every_package() -> None:
    """Every package and top-level module of pithead is named in the layers contract (exhaustive = true
    makes import-linter refuse a new package that is not placed in a layer)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in conf["contracts"] if c["id"] == "layers")
    assert layers["exhaustive"] is True
    named = {part.strip().strip("()") for layer in layers["layers"] for part in layer.replace(":", "|").split("|")}
    children = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert children <= named, f"not placed in a layer: {sorted(children - named)}"


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """src/pithead and the contracts, copied, so a test can break the copy."""
    shutil.copytree(SRC, tmp_path / "src" / "pithead", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_a_wrong_way_import_breaks_the_layers(tree_copy: Path) -> None:
    assert _lint(tree_copy, tree_copy / "src").returncode == 0  # the copy is as good as the tree
    # the chain (the bottom layer) reaching up into the ledger
    _append(tree_copy / "src/pithead/chain/varint.py", "import pithead.ledger.schemes  # wrong way")
    result = _lint(tree_copy, tree_copy / "src")
    assert result.returncode != 0
    assert "pithead.chain is not allowed to import pithead.ledger" in result.stdout, result.stdout
    assert "pithead.chain.varint -> pithead.ledger.schemes" in result.stdout


def test_siblings_of_one_layer_may_not_import_each_other(tree_copy: Path) -> None:
    _append(tree_copy / "src/pithead/farm/model.py", "import pithead.ledger.schemes  # a sibling")
    result = _lint(tree_copy, tree_copy / "src")
    assert result.returncode != 0
    assert "pithead.farm is not allowed to import pithead.ledger" in result.stdout, result.stdout


def test_the_farm_manager_may_not_reach_into_the_pool(tree_copy: Path) -> None:
    """Stratum sits below the farm's layer, yet the farm reads devices through their own APIs only."""
    _append(tree_copy / "src/pithead/farm/poller.py", "import pithead.stratum.difficulty  # the pool's code")
    result = _lint(tree_copy, tree_copy / "src")
    assert result.returncode != 0
    assert "pithead.farm is not allowed to import pithead.stratum" in result.stdout, result.stdout


def test_a_socket_in_a_sans_io_core_breaks_the_contract(tree_copy: Path) -> None:
    _append(tree_copy / "src/pithead/stratum/v1/wire.py", "import socket  # I/O in a sans-IO core")
    result = _lint(tree_copy, tree_copy / "src")
    assert result.returncode != 0
    assert "pithead.stratum.v1 is not allowed to import socket" in result.stdout, result.stdout


# --- imports inside functions ------------------------------------------------------------------------

#: A pithead import inside a function must say why on its line or the line above, with a comment
#: starting with one of these words.
JUSTIFICATIONS = ("# optional", "# start-up", "# child process", "# deferred")

#: Inside-function imports not yet moved to the top of their module: the architecture step emptied it; it
#: stays as the place a reviewed exception would go (none is expected).
KNOWN: set[str] = set()


def _inner_imports() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        rel = str(path.relative_to(SRC.parent))
        for fn in ast.walk(ast.parse(text)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] if not node.level else ["pithead"]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                if not any(n == "pithead" or n.startswith("pithead.") for n in names):
                    continue
                here = lines[node.lineno - 1]
                above = lines[node.lineno - 2] if node.lineno > 1 else ""
                if any(j in here or above.strip().startswith(j) for j in JUSTIFICATIONS):
                    continue
                found.append((rel, node.lineno, here.strip()))
    return found


def test_no_unexplained_pithead_import_inside_a_function() -> None:
    found = _inner_imports()
    keys = {f"{rel}: {code}" for rel, _, code in found}
    new = sorted(k for k in keys if k not in KNOWN)
    assert not new, "pithead imports inside functions (move them to the top, or say why):\n" + "\n".join(new)
    gone = sorted(KNOWN - keys)
    assert not gone, "fixed, so take them off KNOWN:\n" + "\n".join(gone)


# --- one name, one concept ---------------------------------------------------------------------------

#: Class names still defined in two places (the architecture step empties this).
KNOWN_DUPLICATES: set[str] = set()


def test_every_class_name_is_defined_once() -> None:
    """Two classes of one name in the tree (a `Job` of the template and a `Job` of the Stratum client) make
    every import ambiguous to read; each concept gets its own name."""
    where: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(str(path.relative_to(SRC.parent)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1}
    new = {name: paths for name, paths in twice.items() if name not in KNOWN_DUPLICATES}
    assert not new, f"class names defined more than once: {new}"
    gone = sorted(KNOWN_DUPLICATES - set(twice))
    assert not gone, f"no longer defined twice, so take them off KNOWN_DUPLICATES: {gone}"
