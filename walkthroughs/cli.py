"""``python -m walkthroughs``: operator and developer commands around the dataflow.

Settings (bootstrap servers, topics, MongoDB) come from the same ``WALKTHROUGHS_*`` environment
as the dataflow, so a command always talks to what the service uses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence

import pymongo

from walkthroughs import traffic
from walkthroughs.config import Settings
from walkthroughs.errors import WalkthroughsError
from walkthroughs.sinks.mongo import COUNTS, WALKTHROUGHS
from walkthroughs.topics import ensure_topics, produce, read_topic

# Partition counts of `generate --create-topics`: deliberately all different, since the
# service must not rely on co-partitioned inputs.
SAMPLE_PARTITIONS = {
    "messages": 3,
    "messages_backfill": 2,
    "walkins": 5,
    "walkins_backfill": 1,
    "output": 3,
    "dlq": 1,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m walkthroughs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="produce sample traffic to the input topics")
    gen.add_argument("--customers", type=int, default=2000, help="customers (default 2000)")
    gen.add_argument("--businesses", type=int, default=25, help="businesses (default 25)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument("--days", type=int, default=3, help="days of message history (default 3)")
    gen.add_argument(
        "--create-topics",
        action="store_true",
        help="create missing topics first (partitions 3/2/5/1/3/1)",
    )
    commands.add_parser("summary", help="print walkthroughs per business and DLQ reasons")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "generate":
            return _generate(settings, args)
        return _summary(settings)
    except WalkthroughsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    kafka = settings.kafka_config()
    if args.create_topics:
        created = ensure_topics(
            kafka,
            {
                settings.messages_topics[0]: SAMPLE_PARTITIONS["messages"],
                **dict.fromkeys(
                    settings.messages_topics[1:], SAMPLE_PARTITIONS["messages_backfill"]
                ),
                settings.walkins_topics[0]: SAMPLE_PARTITIONS["walkins"],
                **dict.fromkeys(settings.walkins_topics[1:], SAMPLE_PARTITIONS["walkins_backfill"]),
                settings.output_topic: SAMPLE_PARTITIONS["output"],
                settings.dlq_topic: SAMPLE_PARTITIONS["dlq"],
            },
        )
        print(f"created topics: {', '.join(created) or 'none (all existed)'}")
    start = time.time_ns() - args.days * traffic.DAY
    sample = traffic.generate(
        seed=args.seed,
        businesses=args.businesses,
        customers=args.customers,
        start_ns=start,
        days=args.days,
    )
    produce(kafka, settings.messages_topics[0], sample.messages)
    produce(kafka, settings.walkins_topics[0], sample.walkins)
    print(
        f"produced {len(sample.messages)} message records to {settings.messages_topics[0]} and "
        f"{len(sample.walkins)} walk-in records to {settings.walkins_topics[0]} "
        f"({sample.bad} bad, the rest valid or duplicates)"
    )
    return 0


def _summary(settings: Settings) -> int:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        settings.mongo_uri, serverSelectionTimeoutMS=5000
    )
    db = client[settings.mongo_db]
    total = db[WALKTHROUGHS].count_documents({})
    per_business: Counter[str] = Counter()
    days: set[object] = set()
    for doc in db[COUNTS].find({}, {"business_id": 1, "date": 1, "count": 1}):
        per_business[str(doc["business_id"])] += int(str(doc["count"]))
        days.add(doc["date"])
    print(
        f"walkthroughs in MongoDB: {total} over {len(per_business)} businesses and "
        f"{len(days)} local dates (counts sum to {sum(per_business.values())})"
    )
    print("top businesses by walkthroughs:")
    for business, n in per_business.most_common(5):
        print(f"  {business:<12} {n:>6}")
    reasons: Counter[str] = Counter()
    for record in read_topic(settings.kafka_config(), settings.dlq_topic):
        reasons[record.headers.get("error", b"?").decode().split(":")[0].split(" '")[0]] += 1
    print(f"dead letters in {settings.dlq_topic}: {sum(reasons.values())}")
    for reason, n in reasons.most_common():
        print(f"  {reason:<40} {n:>6}")
    client.close()
    return 0
