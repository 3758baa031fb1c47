"""MongoDB sink: documents/s of ``write_walkthroughs`` against the local server, by batch size.

The dataflow hands the sink one batch per business partition per activation; each batch costs
three round trips (read the stored ranks, one unordered bulk of replacements, one recount), so
documents/s grows with the batch size. This measures it on fresh walkthroughs (inserts) and on
the same ones again (a replay: reads only, nothing improves), median of runs.

Usage: python -m bench.mongo [--docs N]. Needs the local stack (make up).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time

from pymongo import MongoClient
from pymongo.database import Database

from bench.common import report
from bench.e2e import MONGO_URI
from walkthroughs.schema import Walkthrough
from walkthroughs.sinks.mongo import WALKTHROUGHS, Doc, ensure_indexes, write_walkthroughs

BATCH_SIZES = (100,)  # FerretDB stalled on batches of 1000 (bench/README.md); try more on MongoDB


def walkthroughs(n: int, businesses: int, seed: int) -> list[Walkthrough]:
    rng = random.Random(seed)
    start = time.time_ns() - 86400 * 10**9
    return [
        Walkthrough(
            f"w-{seed}-{i}",
            f"biz-{rng.randrange(businesses):03d}",
            f"c-{i}",
            "loc",
            start + i * 10**9,
            f"m-{i}",
            rng.randrange(5),
            "",
            start + i * 10**9 - 3600 * 10**9,
            f"2026-11-{rng.randrange(20, 25)}",
        )
        for i in range(n)
    ]


def write(db: Database[Doc], docs: list[Walkthrough], size: int) -> float:
    """Write ``docs`` in batches of ``size``; return documents/s."""
    started = time.perf_counter()
    for first in range(0, len(docs), size):
        write_walkthroughs(db, docs[first : first + size])
    return len(docs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--batch", type=int, action="append", help="batch size(s) to measure")
    args = parser.parse_args()
    client: MongoClient[Doc] = MongoClient(MONGO_URI, tz_aware=True)
    name = f"benchmongo{int(time.time())}"
    db = client[name]
    ensure_indexes(db)
    seeds = itertools.count()
    try:
        for size in args.batch or BATCH_SIZES:
            fresh = [walkthroughs(args.docs, 20, next(seeds)) for _ in range(args.runs)]
            new = [write(db, docs, size) for docs in fresh]
            replayed = [write(db, fresh[0], size) for _ in range(args.runs)]
            report(
                "mongo_sink",
                server=client.server_info().get("version", "?"),
                batch_size=size,
                docs=args.docs,
                docs_per_s_new=round(statistics.median(new)),
                docs_per_s_replayed=round(statistics.median(replayed)),
                runs_new=[round(v) for v in new],
                runs_replayed=[round(v) for v in replayed],
                collection_docs=db[WALKTHROUGHS].estimated_document_count(),
            )
    finally:
        client.drop_database(name)
        client.close()


if __name__ == "__main__":
    main()
