"""Shared helpers of the benchmarks: machine facts, JSON result lines, medians, sample events."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.jsonl"


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


def apply_events(shards: dict[str, Any], events: list[Any], now_ns: int, rules: Any) -> None:
    """Feed events to their shards the way the dataflow routes them (for in-memory benches)."""
    from walkthroughs.attribution import LIVE_CUSTOMERS, Shard, shard_of
    from walkthroughs.schema import Origin

    origin = Origin("bench", 0, 0, None, b"")
    for e in events:
        key = shard_of(e.business_id, e.customer_id)
        shard = shards.get(key)
        if shard is None:
            shard = shards[key] = Shard()
        shard.apply(e, origin, now_ns, rules)
        shard.pack(keep=LIVE_CUSTOMERS)  # as the dataflow does after each batch
