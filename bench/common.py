"""Shared helpers of the benchmarks: machine facts, JSON result lines, medians, sample events."""

from __future__ import annotations

import compileall
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from walkthroughs.attribution import Engine
from walkthroughs.tools import traffic
from walkthroughs.wire.schema import MessageEvent, Origin, WalkInEvent

RESULTS = Path(__file__).resolve().parent / "results.jsonl"
REPO = Path(__file__).resolve().parent.parent


def precompile() -> None:
    """Write the bytecode of the project's modules, as the image's ``pip install`` does.

    The checkout is installed in editable mode, and with ``PYTHONDONTWRITEBYTECODE`` set (as on
    CI machines and in the image) every process would compile the package from source again,
    ~45 ms of CPU a process that no deployment pays.
    """
    for folder in ("walkthroughs", "bench"):
        compileall.compile_dir(REPO / folder, quiet=1)
    compileall.compile_file(REPO / "dataflow.py", quiet=1)


def machine() -> dict[str, Any]:
    """Cores and CPU model, so that every figure says where it came from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def report(bench: str, **figures: Any) -> None:
    """Print one JSON line of results and append it to bench/results.jsonl."""
    line = json.dumps(
        {
            "bench": bench,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **figures,
            "machine": machine(),
        }
    )
    print(line, flush=True)
    with RESULTS.open("a") as out:
        out.write(line + "\n")


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``measure`` ``runs`` times; return the median and every value."""
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def run_engine(
    engine: Engine,
    events: Sequence[MessageEvent | WalkInEvent],
    now_ns: int,
    batch: int | None = None,
) -> None:
    """Feed events to the engine, all read at ``now_ns``: in one batch, or ``batch`` at a time.

    One batch is the engine's figure since the first release (every event applied in turn);
    smaller batches add what a batch costs per shard, as the dataflow pays it.
    """
    origin = Origin("bench", 0, 0, None, b"")
    size = batch or max(1, len(events))
    for first in range(0, len(events), size):
        engine.process([(e, origin) for e in events[first : first + size]], now_ns)


def good_traffic(customers: int, seed: int) -> traffic.Traffic:
    """Sample traffic of 500 businesses over the last three days, every record valid."""
    return traffic.generate(
        seed=seed,
        businesses=500,
        customers=customers,
        start_ns=time.time_ns() - 3 * traffic.DAY,
        bad_records=False,
    )
