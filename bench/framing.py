"""Decode cost per record, bare protobuf against records framed by a Schema Registry serializer.

The same records decoded bare and framed as confluent-kafka's ``ProtobufSerializer`` frames them
(a message: index [0]; a walk-in: [1], the second message of the schema file), in alternating
runs, in one process (no Kafka, no Bytewax). Prints ns per record and the framed/bare ratio,
medians of ``--runs`` (the target: framing costs under 5%).

Usage: python -m bench.framing [--customers N] [--runs N].
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench.common import good_traffic, report
from walkthroughs.wire.codec import decode_message, decode_walkin
from walkthroughs.wire.framing import frame


def per_record_ns(decode: Callable[[bytes], object], values: list[bytes]) -> float:
    started = time.perf_counter()
    for value in values:
        decode(value)
    return (time.perf_counter() - started) / len(values) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    sample = good_traffic(args.customers, seed=3)
    kinds: list[tuple[str, Callable[[bytes], object], list[bytes], tuple[int, ...]]] = [
        ("message", decode_message, [v for _, v in sample.messages if v], (0,)),
        ("walk-in", decode_walkin, [v for _, v in sample.walkins if v], (1,)),
    ]
    for kind, decode, bare, indexes in kinds:
        framed = [frame(value, 1, indexes) for value in bare]
        bare_ns: list[float] = []
        framed_ns: list[float] = []
        for _ in range(args.runs):  # alternating, so that drift of the machine hits both alike
            bare_ns.append(per_record_ns(decode, bare))
            framed_ns.append(per_record_ns(decode, framed))
        report(
            "framing",
            kind=kind,
            records=len(bare),
            bare_ns=round(statistics.median(bare_ns)),
            framed_ns=round(statistics.median(framed_ns)),
            ratio=round(
                statistics.median(f / b for f, b in zip(framed_ns, bare_ns, strict=True)), 3
            ),
        )


if __name__ == "__main__":
    main()
