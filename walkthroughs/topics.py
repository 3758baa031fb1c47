"""Kafka topic administration and read-back: used by the CLI, the tests and the benches."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from walkthroughs.errors import WalkthroughsError
from walkthroughs.sinks.kafka import producer_config
from walkthroughs.sources.kafka import consumer_config


class Record(NamedTuple):
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def ensure_topics(
    kafka_config: Mapping[str, str], partitions: Mapping[str, int], timeout_s: float = 30
) -> list[str]:
    """Create the topics that do not exist yet, with the partition counts given.

    Returns the names created. Existing topics are left as they are (their partition count is
    not checked here: co-partitioning of the inputs is not required).
    """
    admin = AdminClient(dict(kafka_config))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(name, num_partitions=n, replication_factor=-1)
        for name, n in partitions.items()
        if name not in existing
    ]
    if not wanted:
        return []
    for future in admin.create_topics(wanted, request_timeout=timeout_s).values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [t.topic for t in wanted]


def produce(
    kafka_config: Mapping[str, str],
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
    timeout_s: float = 60,
) -> list[tuple[int, int]]:
    """Produce keyed records in order, wait for every acknowledgement.

    Returns the (partition, offset) where each record landed.

    Raises:
        WalkthroughsError: a record was not acknowledged.
    """
    landed: list[tuple[int, int]] = [(-1, -1)] * len(records)
    failures: list[str] = []

    def report(index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(str(error))
            else:
                landed[index] = (message.partition() or 0, message.offset() or 0)

        return on_delivery

    producer = Producer(producer_config(kafka_config, delivery_timeout_s=timeout_s))
    for i, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=report(i))
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(timeout_s) or failures:
        msg = f"producing to {topic} failed: {failures[:1] or 'not acknowledged in time'}"
        raise WalkthroughsError(msg)
    return landed


def read_topic(kafka_config: Mapping[str, str], topic: str, timeout_s: float = 30) -> list[Record]:
    """Read a whole topic, every partition up to the end offset it has now."""
    consumer = Consumer(consumer_config(kafka_config))
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Record] = []
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                msg = f"reading {topic}: end offsets not reached within {timeout_s:.0f}s"
                raise TimeoutError(msg)
            batch = consumer.consume(1000, timeout=0.2)  # returns early as records arrive
            for m in batch:
                if m.error() is not None:
                    continue
                p, offset = m.partition(), m.offset()
                if p is None or offset is None or offset >= ends[p]:
                    continue
                headers = {h[0]: _as_bytes(h[1]) for h in (m.headers() or [])}
                records.append(Record(topic, p, offset, m.key(), m.value(), headers))
                if offset + 1 >= ends[p]:
                    done.add(p)
        return records
    finally:
        consumer.close()


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value
