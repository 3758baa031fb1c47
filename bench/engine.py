"""Engine only: the pure attribution logic on in-memory events (no Kafka, no Bytewax).

Usage: python -m bench.engine [--customers N] [--runs N]. Prints events/s (median of runs).
"""

from __future__ import annotations

import argparse
import time

from bench.common import good_traffic, median_of, report, run_engine
from walkthroughs.attribution import Engine
from walkthroughs.runtime.config import DEFAULT_RULES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=None, help="events per batch (all: one)")
    args = parser.parse_args()
    sample = good_traffic(args.customers, seed=1)
    events = sample.events + sample.events[: len(sample.events) // 10]  # ~10% duplicates

    def once() -> float:
        engine = Engine(DEFAULT_RULES)
        now = time.time_ns()
        started = time.perf_counter()
        run_engine(engine, events, now, args.batch)
        engine.finish(now)
        return len(events) / (time.perf_counter() - started)

    median, values = median_of(args.runs, once)
    report(
        "engine",
        events=len(events),
        batch=args.batch or len(events),
        events_per_s=round(median),
        runs=[round(v) for v in values],
    )


if __name__ == "__main__":
    main()
