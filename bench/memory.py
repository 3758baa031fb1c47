"""Scale and memory: 1 million live customer keys in the attribution state.

Builds the state of N customers (default 1,000,000) in one process, the way the dataflow's
shards hold it (a snapshot of every shard after each chunk of traffic, as epochs end), then
reports RSS, bytes per retained event, the size of a full snapshot (every shard serialized, as
Bytewax stores them), the time to restore it (the CPU part of a resume), and throughput with
that state in place.

Usage: python -m bench.memory [--customers N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

from bench.common import report, run_engine
from walkthroughs.attribution import Engine, Shard
from walkthroughs.runtime.config import DEFAULT_RULES
from walkthroughs.tools import traffic
from walkthroughs.wire.codec import decode_message, decode_walkin
from walkthroughs.wire.schema import MessageEvent, WalkInEvent


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    start = time.time_ns() - 3 * traffic.DAY
    engine = Engine(DEFAULT_RULES)
    shards = engine.shards
    baseline = rss_bytes()
    now = time.time_ns()
    chunk = 100_000
    for first in range(0, args.customers, chunk):  # in chunks: the sample itself is not state
        sample = traffic.generate(
            seed=first,
            businesses=2000,
            customers=chunk,
            start_ns=start,
            bad_records=False,
            duplicate_rate=0.0,
            prefix=f"c{first}-",
        )
        # Decoded from their wire bytes, as the dataflow gets them (strings shared as in decode).
        events: list[MessageEvent | WalkInEvent] = [decode_message(v) for _, v in sample.messages]
        events += [decode_walkin(v) for _, v in sample.walkins]
        run_engine(engine, events, now, 10_000)  # batches as the dataflow gets them
        for shard in shards.values():  # an epoch ends: what the dataflow does at a snapshot
            shard.snapshot()
        del events
        del sample
        gc.collect()
    customers = sum(len(s) for s in shards.values())
    messages = walkins = 0
    for s in shards.values():
        m, w = s.retained()
        messages += m
        walkins += w
    state_rss = rss_bytes() - baseline

    started = time.perf_counter()
    blobs = [s.snapshot().blob() for s in shards.values()]  # serialized as Bytewax stores them
    dump_s = time.perf_counter() - started
    snapshot_bytes = sum(len(b) for b in blobs)
    started = time.perf_counter()
    restored = [Shard.restore(b) for b in blobs]
    restore_s = time.perf_counter() - started
    del restored, blobs
    gc.collect()

    steady = traffic.generate(
        seed=999_999,
        businesses=2000,
        customers=100_000,
        start_ns=start,
        bad_records=False,
        duplicate_rate=0.0,
        prefix="steady-",
    )
    started = time.perf_counter()
    run_engine(engine, steady.events, now)
    steady_rate = len(steady.events) / (time.perf_counter() - started)

    report(
        "memory",
        customers=customers,
        retained_messages=messages,
        retained_walkins=walkins,
        state_rss_mib=round(state_rss / 2**20),
        process_rss_mib=round(rss_bytes() / 2**20),
        bytes_per_retained_event=round(state_rss / max(1, messages + walkins)),
        snapshot_mib=round(snapshot_bytes / 2**20, 1),
        snapshot_s=round(dump_s, 2),
        restore_s=round(restore_s, 2),
        events_per_s_at_size=round(steady_rate),
    )


if __name__ == "__main__":
    main()
