"""Where tests/chain finds the copied vectors (tests/vectors/, see its PROVENANCE.md).

A plain helper module rather than `from conftest import …`: with several conftest.py files in a
package-less tests tree, the module named "conftest" at import time is whichever pytest loaded last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())
