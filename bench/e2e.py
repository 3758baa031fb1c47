"""End-to-end throughput on the real broker, side by side with a raw confluent-kafka loop.

Pre-produces N input records (realistic mix: ~8% duplicates, ~2% bad) to fresh topics with
different partition counts, then times, from process start to exit:

* the dataflow in bounded mode, 1 worker and 2 processes x 1 worker, Kafka -> Kafka only
  (``WALKTHROUGHS_MONGO_ENABLED=0``) and with MongoDB;
* the raw loop, in a process of its own: the same topics consumed in batches with
  confluent-kafka, the same decode and attribution logic and encoding, produced back, no
  Bytewax (the ceiling).

Every process imports the project's bytecode, written first (``common.precompile``), as a
deployed image does.

The runs with MongoDB use fewer records (``--mongo-events``): FerretDB, the local stand-in,
writes a few hundred documents/s (docs/local-stack.md).

Usage: python -m bench.e2e [--events N] [--mongo-events N] [--no-mongo]. Needs the local stack.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

import pymongo
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.common import REPO, precompile, report
from walkthroughs.attribution import Engine, Event, Output
from walkthroughs.dataflow.app import tune_gc
from walkthroughs.runtime.config import DEFAULT_RULES
from walkthroughs.sinks.kafka import dead_letter_record, producer_config, walkthrough_record
from walkthroughs.sources.kafka import consumer_config
from walkthroughs.testing.hostile import hostile_record
from walkthroughs.testing.ports import free_ports
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import ensure_topics, produce
from walkthroughs.wire.codec import decode_record
from walkthroughs.wire.schema import Attributed, DeadLetter, Origin

BOOTSTRAP = os.environ.get("BENCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
MONGO_URI = os.environ.get("BENCH_MONGO_URI", "mongodb://127.0.0.1:27017")
PARTITIONS = {"m": 3, "mb": 2, "w": 5, "wb": 1, "out": 3, "dlq": 1, "erase": 1}


def prepare(name: str, events: int, *, mongo: bool = False) -> int:
    """Create the topics and produce about ``events`` records; return how many.

    For a run with MongoDB (``mongo``), no hostile record holds U+0000 in an id: the local
    stand-in on PostgreSQL cannot store such a string (docs/local-stack.md).
    """
    kafka = {"bootstrap.servers": BOOTSTRAP}
    ensure_topics(kafka, {f"{name}-{s}": n for s, n in PARTITIONS.items()})
    customers = max(1000, int(events / 2.3))  # the generator makes ~2.3 events per customer
    sample = traffic.generate(
        seed=42,
        businesses=500,
        customers=customers,
        start_ns=time.time_ns() - 3 * traffic.DAY,
        bad_records=False,
        duplicate_rate=0.08,
    )
    rng = random.Random(1)
    total = 0
    for suffix, records, walkin in (("m", sample.messages, False), ("w", sample.walkins, True)):
        bad = [
            (b"bad", hostile_record(rng, walkin, nul_ids=not mongo))
            for _ in range(len(records) // 50)
        ]
        mixed = records + bad
        rng.shuffle(mixed)
        # About a fifth through the backfill topic, like a backfill running alongside.
        cut = len(mixed) // 5
        produce(kafka, f"{name}-{suffix}b", mixed[:cut])
        produce(kafka, f"{name}-{suffix}", mixed[cut:])
        total += len(mixed)
    return total


def env(name: str, *, mongo: bool) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WALKTHROUGHS_")}
    return {
        **clean,
        "WALKTHROUGHS_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "WALKTHROUGHS_MESSAGES_TOPICS": f"{name}-m,{name}-mb",
        "WALKTHROUGHS_WALKINS_TOPICS": f"{name}-w,{name}-wb",
        "WALKTHROUGHS_OUTPUT_TOPIC": f"{name}-out",
        "WALKTHROUGHS_DLQ_TOPIC": f"{name}-dlq",
        "WALKTHROUGHS_ERASURES_TOPIC": f"{name}-erase",
        "WALKTHROUGHS_MONGO_URI": MONGO_URI,
        "WALKTHROUGHS_MONGO_DB": name.replace("-", ""),
        "WALKTHROUGHS_MONGO_ENABLED": "1" if mongo else "0",
        "WALKTHROUGHS_STOP_AT_END": "1",
        "WALKTHROUGHS_LOG_LEVEL": "WARNING",
    }


def run_dataflow(name: str, *, processes: int, mongo: bool) -> float:
    """Run the bounded dataflow; return wall seconds from start to exit of every process."""
    if mongo:
        pymongo.MongoClient(MONGO_URI).drop_database(name.replace("-", ""))
    if processes == 1:
        commands = [["-w", "1"]]
    else:
        addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
        commands = [["-i", str(i), "-a", addresses] for i in range(processes)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow", *c],
            cwd=REPO,
            env=env(name, mongo=mongo),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"dataflow failed: {err[-2000:]}")
    return time.perf_counter() - started


def consume_all(
    kafka: dict[str, str], topics: list[str]
) -> tuple[Consumer, dict[tuple[str, int], int]]:
    """One consumer assigned every non-empty partition, and each partition's end offset."""
    lister = Consumer(consumer_config(kafka))
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        for p in lister.list_topics(topic, timeout=10).topics[topic].partitions:
            _, high = lister.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > 0:
                ends[(topic, p)] = high
    lister.close()
    # One consumer for every partition here, where the service has one per partition: give it
    # the prefetch room of all of theirs together.
    config = consumer_config(kafka)
    prefetch = {
        bound: int(str(config[bound])) * len(ends)
        for bound in ("queued.max.messages.kbytes", "queued.min.messages")
    }
    consumer = Consumer({**config, **prefetch})
    consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
    return consumer, ends


def time_raw_loop(name: str) -> float:
    """Run the raw loop in a process of its own; return wall seconds from start to exit.

    Timed as the dataflow is, interpreter start and imports included, so that the ratio of the
    two compares what each costs a deployment.
    """
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bench.e2e", "--raw-loop-only", name], cwd=REPO, check=True
    )
    return time.perf_counter() - started


def run_raw_loop(name: str) -> float:
    """The ceiling: one process, batches, the same logic and codecs, no Bytewax."""
    tune_gc()  # the same collector settings as the service
    started = time.perf_counter()
    kafka = {"bootstrap.servers": BOOTSTRAP}
    topics = [f"{name}-{s}" for s in ("m", "mb", "w", "wb")]
    consumer, ends = consume_all(kafka, topics)
    producer = Producer(producer_config(kafka, delivery_timeout_s=60))
    message_topics = frozenset(topics[:2])
    engine = Engine(DEFAULT_RULES)
    out_topic, dlq_topic = f"{name}-out", f"{name}-dlq"
    remaining = dict(ends)

    def emit(outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Attributed):
                key, value, _ = walkthrough_record(o)
                producer.produce(out_topic, value, key)
            elif isinstance(o, DeadLetter):  # no erasures in this traffic
                key, value, headers = dead_letter_record(o)
                producer.produce(dlq_topic, value, key, headers=headers)
        producer.poll(0)

    while remaining:
        batch = consumer.consume(10_000, timeout=1.0)
        now = time.time_ns()
        outputs: list[Output] = []
        events: list[Event] = []
        for m in batch:
            topic, p, offset = m.topic(), m.partition(), m.offset()
            if m.error() is not None or topic is None or p is None or offset is None:
                continue
            origin = Origin(topic, p, offset, m.key(), m.value())
            decoded = decode_record(origin, message_topics)
            if isinstance(decoded, DeadLetter):
                outputs.append(decoded)
            else:
                events.append(decoded)
            if offset + 1 >= ends[(topic, p)]:
                remaining.pop((topic, p), None)
        outputs += engine.process(events, now)  # routed and batched per shard, as the dataflow
        emit(outputs)
    emit(engine.finish(time.time_ns()))
    producer.flush(60)
    consumer.close()
    return time.perf_counter() - started


def run_and_report(name: str, records: int, raw_s: float | None, *, mongo: bool) -> None:
    """Run the dataflow with 1 and 2 processes on prepared topics; print one line each."""
    for processes in (1, 2):
        secs = run_dataflow(name, processes=processes, mongo=mongo)
        figures: dict[str, object] = {}
        if raw_s is not None:
            figures["ratio_to_raw"] = round(raw_s / secs, 3)
        if mongo:
            client: pymongo.MongoClient[dict[str, object]]
            with pymongo.MongoClient(MONGO_URI) as client:
                docs = client[name.replace("-", "")]["walkthroughs"].estimated_document_count()
            figures.update(mongo_docs=docs, mongo_docs_per_s=round(docs / secs))
        report(
            "e2e",
            records=records,
            processes=processes,
            workers_per_process=1,
            mongo=mongo,
            seconds=round(secs, 2),
            events_per_s=round(records / secs),
            events_per_s_per_process=round(records / secs / processes),
            **figures,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--mongo-events",
        type=int,
        default=30_000,
        help="records of the runs with MongoDB: about a minute a run on the local FerretDB",
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--no-mongo", action="store_true", help="Kafka -> Kafka runs only")
    runs.add_argument("--mongo-only", action="store_true", help="the runs with MongoDB only")
    runs.add_argument("--raw-loop-only", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_loop_only:  # the raw loop's own process (time_raw_loop)
        run_raw_loop(args.raw_loop_only)
        return
    precompile()
    names = [f"bench-{int(time.time())}"]
    try:
        if not args.mongo_only:
            t0 = time.perf_counter()
            records = prepare(names[0], args.events)
            print(f"produced {records} records in {time.perf_counter() - t0:.1f}s", flush=True)
            raw_s = time_raw_loop(names[0])
            report(
                "raw_loop",
                records=records,
                seconds=round(raw_s, 2),
                events_per_s=round(records / raw_s),
            )
            run_and_report(names[0], records, raw_s, mongo=False)
        if not args.no_mongo:
            names.append(f"{names[0]}-mongo")
            records = prepare(names[1], args.mongo_events, mongo=True)
            run_and_report(names[1], records, None, mongo=True)
    finally:
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        admin.delete_topics([f"{name}-{s}" for name in names for s in PARTITIONS])
        for name in names:
            pymongo.MongoClient(MONGO_URI).drop_database(name.replace("-", ""))


if __name__ == "__main__":
    main()
