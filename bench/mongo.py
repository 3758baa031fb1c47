"""MongoDB sink: documents/s of ``write_walkthroughs`` against the local server, by batch size.

The dataflow hands the sink one batch per business partition per activation; each batch costs
three round trips (read the stored ranks, one unordered bulk of replacements, one recount), so
documents/s grows with the batch size. This measures it on fresh walkthroughs (inserts) and on
the same ones again (a replay: reads only, nothing improves), median of runs, together with the
sink's own CPU per document: what it costs the worker whatever the server (the documents/s are
FerretDB's here; the client's work is the same on MongoDB).

Usage: python -m bench.mongo [--docs N]. Needs the local stack (make up).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from typing import NamedTuple

from pymongo import MongoClient
from pymongo.database import Database

from bench.common import report
from bench.e2e import MONGO_URI
from walkthroughs.sinks.mongo import WALKTHROUGHS, Doc, ensure_indexes, write_walkthroughs
from walkthroughs.wire.schema import Walkthrough

BATCH_SIZES = (100, 1000)


RUN_PER_BUSINESS = 50
"""Consecutive walkthroughs of one business. A sink partition owns a 64th of the businesses, so
its batch of a flush tick holds a few businesses, each on one or two local dates: here a batch
of 100 touches 2 businesses and up to 4 (business, date) pairs to recount."""


def walkthroughs(n: int, businesses: int, seed: int) -> list[Walkthrough]:
    rng = random.Random(seed)
    start = time.time_ns() - 86400 * 10**9
    return [
        Walkthrough(
            f"w-{seed}-{i}",
            f"biz-{i // RUN_PER_BUSINESS % businesses:03d}",
            f"c-{i}",
            "loc",
            start + i * 10**9,
            f"m-{i}",
            rng.randrange(5),
            "",
            start + i * 10**9 - 3600 * 10**9,
            f"2026-11-{rng.randrange(23, 25)}",
        )
        for i in range(n)
    ]


class Written(NamedTuple):
    """One pass of ``write``: documents/s, and the writer's own CPU per document."""

    docs_per_s: float
    client_cpu_us_per_doc: float


def write(db: Database[Doc], docs: list[Walkthrough], size: int) -> Written:
    """Write ``docs`` in batches of ``size``.

    The calling thread's CPU time (building documents, BSON, reading replies) is what the sink
    costs the worker on any server; the rest of the wall time is waiting for the server.
    """
    started, cpu_started = time.perf_counter(), time.thread_time()
    for first in range(0, len(docs), size):
        write_walkthroughs(db, docs[first : first + size])
    cpu_s, wall_s = time.thread_time() - cpu_started, time.perf_counter() - started
    return Written(len(docs) / wall_s, cpu_s / len(docs) * 1e6)


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
                docs_per_s_new=round(statistics.median(r.docs_per_s for r in new)),
                docs_per_s_replayed=round(statistics.median(r.docs_per_s for r in replayed)),
                client_cpu_us_per_doc_new=round(
                    statistics.median(r.client_cpu_us_per_doc for r in new), 1
                ),
                client_cpu_us_per_doc_replayed=round(
                    statistics.median(r.client_cpu_us_per_doc for r in replayed), 1
                ),
                runs_new=[round(r.docs_per_s) for r in new],
                runs_replayed=[round(r.docs_per_s) for r in replayed],
                collection_docs=db[WALKTHROUGHS].estimated_document_count(),
            )
    finally:
        client.drop_database(name)
        client.close()


if __name__ == "__main__":
    main()
