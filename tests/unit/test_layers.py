"""Imports point one way: the pure modules never reach I/O libraries or the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "walkthroughs"
IO_AND_ENGINE = {"bytewax", "confluent_kafka", "pymongo", "orjson", "socket", "os", "requests"}
FORBIDDEN = {
    "schema.py": IO_AND_ENGINE | {"google", "walkthroughs"},
    "errors.py": IO_AND_ENGINE | {"google"},
    "codec.py": IO_AND_ENGINE,
    "claims.py": IO_AND_ENGINE,
    "redaction.py": IO_AND_ENGINE,
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_pure_module_imports_no_io(module: str) -> None:
    bad = imported_roots(PACKAGE / module) & FORBIDDEN[module]
    assert not bad, f"{module} imports {sorted(bad)}"
