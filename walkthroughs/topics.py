"""Kafka topic administration and read-back: used by the CLI, the tests and the benches."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from walkthroughs.errors import WalkthroughsError
from walkthroughs.sinks.kafka import CheckedProducer, Headers, producer_config
from walkthroughs.sources.kafka import consumer_config


class Record(NamedTuple):
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int = 0  # Kafka record time (when it was produced)


class TopicInfo(NamedTuple):
    """What ``topics verify`` shows of a topic."""

    partitions: int
    retention_ms: str
    cleanup_policy: str


def ensure_topics(
    kafka_config: Mapping[str, str],
    partitions: Mapping[str, int],
    timeout_s: float = 30,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet, with the partition counts (and configs) given.

    Returns the names created. Existing topics are left as they are (their partition count is
    not checked here: co-partitioning of the inputs is not required).
    """
    admin = AdminClient(dict(kafka_config))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=n,
            replication_factor=-1,
            config=dict((configs or {}).get(name, {})),
        )
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
    """Produce keyed records to one topic in order, wait for every acknowledgement.

    Returns the (partition, offset) where each record landed. Raises ``WalkthroughsError``.
    """
    return produce_to(kafka_config, [(topic, k, v, None) for k, v in records], timeout_s=timeout_s)


def describe_topics(
    kafka_config: Mapping[str, str], names: Sequence[str], timeout_s: float = 30
) -> dict[str, TopicInfo]:
    """Return partition count, retention and cleanup policy of the topics that exist.

    Raises:
        WalkthroughsError: the cluster cannot be reached.
    """
    admin = AdminClient(dict(kafka_config))
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        msg = f"cannot reach Kafka at {kafka_config.get('bootstrap.servers')}: {exc.args[0]}"
        raise WalkthroughsError(msg) from exc
    present = [n for n in names if n in meta.topics and meta.topics[n].error is None]
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in present]
    found: dict[str, TopicInfo] = {}
    if not resources:
        return found
    for resource, future in admin.describe_configs(resources).items():
        entries = future.result(timeout=timeout_s)
        found[resource.name] = TopicInfo(
            len(meta.topics[resource.name].partitions),
            entries["retention.ms"].value if "retention.ms" in entries else "?",
            entries["cleanup.policy"].value if "cleanup.policy" in entries else "?",
        )
    return found


def copy_time_range(
    kafka_config: Mapping[str, str],
    source: str,
    target: str,
    start: datetime,
    end: datetime,
    on_progress: Callable[[int, int], object] = lambda done, total: None,
    timeout_s: float = 30,
) -> int:
    """Copy the records of ``source`` produced in ``[start, end)`` to ``target``, as they are.

    Offsets-for-times finds each partition's first record at or after ``start`` and ``end``, so
    only that range is read. Returns the number of records copied.
    """
    consumer = Consumer(consumer_config(kafka_config))
    producer = CheckedProducer(producer_config(kafka_config, timeout_s), target, timeout_s)
    try:
        ranges = offset_ranges(consumer, source, start, end, timeout_s)
        total = sum(b - a for a, b in ranges.values())
        on_progress(0, total)
        consumer.assign([TopicPartition(source, p, a) for p, (a, _) in ranges.items()])
        done_parts: set[int] = set()
        copied = 0
        while len(done_parts) < len(ranges):
            for m in consumer.consume(1000, timeout=1.0):
                p, offset = m.partition(), m.offset()
                if m.error() is not None or p is None or offset is None or p in done_parts:
                    continue
                if offset < ranges[p][1]:
                    producer.send([(m.key(), m.value(), cast(Headers, m.headers()))])
                    copied += 1
                if offset + 1 >= ranges[p][1]:
                    done_parts.add(p)
            on_progress(copied, total)
        producer.confirm()
        return copied
    finally:
        consumer.close()


def offset_ranges(
    consumer: Consumer,
    topic: str,
    start: datetime | None,
    end: datetime | None,
    timeout_s: float,
) -> dict[int, tuple[int, int]]:
    """Each partition's offsets of records produced in ``[start, end)``, where there are any.

    Offsets-for-times finds the first record at or after each instant; no bound means the
    partition's beginning or its current end.
    """
    meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    ranges: dict[int, tuple[int, int]] = {}
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        first, last = (
            default
            if at is None
            else _offset_at(consumer, TopicPartition(topic, p, int(at.timestamp() * 1000)), high)
            for at, default in ((start, low), (end, high))
        )
        if last > first:
            ranges[p] = (first, last)
    return ranges


def _offset_at(consumer: Consumer, at: TopicPartition, high: int) -> int:
    found = consumer.offsets_for_times([at], timeout=30)[0].offset
    return found if found >= 0 else high


def read_topic(
    kafka_config: Mapping[str, str],
    topic: str,
    timeout_s: float = 30,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Record]:
    """Read a topic up to its end offsets now: all of it, or what was produced in a range.

    ``since``/``until`` bound the records by Kafka record time, ``[since, until)``.
    """
    consumer = Consumer(consumer_config(kafka_config))
    try:
        ranges = offset_ranges(consumer, topic, since, until, timeout_s)
        ends = {p: last for p, (_, last) in ranges.items()}
        consumer.assign([TopicPartition(topic, p, first) for p, (first, _) in ranges.items()])
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
                at = m.timestamp()[1]
                records.append(Record(topic, p, offset, m.key(), m.value(), headers, at))
                if offset + 1 >= ends[p]:
                    done.add(p)
        return records
    finally:
        consumer.close()


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value


def produce_to(
    kafka_config: Mapping[str, str],
    records: Sequence[tuple[str, bytes | None, bytes | None, Headers | None]],
    on_progress: Callable[[int], object] = lambda done: None,
    timeout_s: float = 60,
) -> list[tuple[int, int]]:
    """Produce (topic, key, value, headers) records in order, wait for every acknowledgement.

    Returns the (partition, offset) where each record landed; ``on_progress`` gets the count
    handed to the producer so far.

    Raises:
        WalkthroughsError: a record was refused or not acknowledged in time.
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
    for i, (topic, key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=report(i))
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
        on_progress(i + 1)
    if producer.flush(timeout_s) or failures:
        topics = sorted({r[0] for r in records})
        msg = (
            f"producing to {', '.join(topics)} failed: {failures[:1] or 'not acknowledged in time'}"
        )
        raise WalkthroughsError(msg)
    return landed
