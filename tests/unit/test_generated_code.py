"""The committed protobuf code must be what the pinned protoc makes of proto/ today."""

from __future__ import annotations

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "walkthroughs" / "_pb"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate = runpy.run_path(str(REPO / "proto" / "generate.py"))["generate"]
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in generate(tmp_path)}
    committed = {
        p.relative_to(COMMITTED): p.read_bytes()
        for p in COMMITTED.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert sorted(committed) == sorted(fresh), "files differ: run `make proto`"
    for name, content in fresh.items():
        assert committed[name] == content, f"{name} is stale: run `make proto` and commit"
