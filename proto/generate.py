"""Generate the Python code of the wire schema with the pinned protoc of grpcio-tools.

`make proto` runs this into walkthroughs/_pb; tests/unit/test_generated_code.py runs it into a
temporary folder and fails if the committed code differs (a stale generation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PROTOS = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.proto"))
DEFAULT_OUT = ROOT.parent / "walkthroughs" / "_pb"


def generate(out: Path) -> list[Path]:
    """Write *_pb2.py and *_pb2.pyi for every proto file into `out`; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")  # google/protobuf/*.proto
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}"]
    if protoc.main([*args, *PROTOS]) != 0:
        raise SystemExit("protoc failed")
    # Packages, so that setuptools ships the generated modules.
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return sorted(p for p in out.rglob("*") if p.is_file())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    for path in generate(parser.parse_args().out):
        print(path, file=sys.stderr)
