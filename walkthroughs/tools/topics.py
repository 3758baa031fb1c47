"""Kafka topic administration and read-back: used by the CLI, the tests and the benches."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    ConfigResource,
    NewTopic,
    ResourceType,
)

from walkthroughs.errors import WalkthroughsError
from walkthroughs.runtime.kafka_logs import admin_client
from walkthroughs.sinks.kafka import CheckedProducer, Headers, producer_config
from walkthroughs.sources.kafka import consumer_config, kafka_failure


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
    admin = admin_client(kafka_config)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException:
        admin.poll(0)  # what librdkafka logged of it (the cause) is shown
        raise
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
    landed = [(-1, -1)] * len(records)

    def keep(index: int, partition: int, offset: int) -> None:
        landed[index] = (partition, offset)

    produce_to(
        kafka_config, ((topic, k, v, None) for k, v in records), timeout_s=timeout_s, on_landed=keep
    )
    return landed


def describe_topics(
    kafka_config: Mapping[str, str], names: Sequence[str], timeout_s: float = 30
) -> dict[str, TopicInfo]:
    """Return partition count, retention and cleanup policy of the topics that exist.

    Raises:
        WalkthroughsError: the cluster cannot be reached.
    """
    admin = admin_client(kafka_config)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # what librdkafka logged of it (the cause: refused, TLS, SASL) is shown
        raise WalkthroughsError(kafka_failure(kafka_config, exc)) from exc
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
    part = slice_topic(kafka_config, source, since=start, until=end, timeout_s=timeout_s)
    producer = CheckedProducer(producer_config(kafka_config, timeout_s), target, timeout_s)
    on_progress(0, part.total)
    copied = 0
    for batch in _batches(kafka_config, part, timeout_s):
        producer.send([(m.key(), m.value(), cast(Headers, m.headers())) for m in batch])
        copied += len(batch)
        on_progress(copied, part.total)
    producer.confirm()
    return copied


class TopicSlice(NamedTuple):
    """Offsets ``[first, end)`` per partition of a topic, fixed when the slice was taken.

    A second read of the same slice sees the same records (less any that retention deleted in
    between), whatever was produced since: what ``dlq redrive`` plans on, it then sends.
    """

    topic: str
    ranges: Mapping[int, tuple[int, int]]

    @property
    def total(self) -> int:
        """How many offsets the slice spans."""
        return sum(end - first for first, end in self.ranges.values())


def slice_topic(
    kafka_config: Mapping[str, str],
    topic: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout_s: float = 30,
) -> TopicSlice:
    """The offsets of ``topic`` up to its end now, or of those produced in ``[since, until)``."""
    consumer = Consumer(consumer_config(kafka_config))
    try:
        return TopicSlice(topic, offset_ranges(consumer, topic, since, until, timeout_s))
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

    ``since``/``until`` bound the records by Kafka record time, ``[since, until)``. For a topic
    that may be large (the DLQ), ``iter_slice`` reads it without holding it.
    """
    part = slice_topic(kafka_config, topic, since=since, until=until, timeout_s=timeout_s)
    return list(iter_slice(kafka_config, part, timeout_s))


def iter_slice(
    kafka_config: Mapping[str, str], part: TopicSlice, idle_timeout_s: float = 30
) -> Iterator[Record]:
    """Yield the records of a slice as they are fetched, in offset order within a partition.

    Memory is the consumer's prefetch, not the slice: a DLQ of millions of records is read in
    one pass. The timeout is on progress (``idle_timeout_s`` without a record), not on the
    whole read, which takes as long as the slice is large.
    """
    for batch in _batches(kafka_config, part, idle_timeout_s):
        for m in batch:
            headers = {h[0]: _as_bytes(h[1]) for h in (m.headers() or [])}
            yield Record(
                part.topic,
                m.partition() or 0,
                m.offset() or 0,
                m.key(),
                m.value(),
                headers,
                m.timestamp()[1],
            )


def _batches(
    kafka_config: Mapping[str, str], part: TopicSlice, idle_timeout_s: float
) -> Iterator[list[Message]]:
    """The slice's records, in the batches the consumer returns them.

    A partition is done at its end offset, or when nothing is left to fetch below it (the
    consumer stepped past its end over a control record, or retention deleted the rest); a
    done partition is paused, so a topic that keeps growing past the slice is not read on.

    Raises:
        WalkthroughsError: a partition made no progress for ``idle_timeout_s``.
    """
    ends = {p: end for p, (_, end) in part.ranges.items()}
    consumer = Consumer(consumer_config(kafka_config))
    try:
        consumer.assign([TopicPartition(part.topic, p, a) for p, (a, _) in part.ranges.items()])
        pending = set(ends)
        last_progress = last_check = time.monotonic()
        while pending:
            kept: list[Message] = []
            finished: set[int] = set()
            for m in consumer.consume(1000, timeout=0.2):
                p, offset = m.partition(), m.offset()
                if m.error() is not None or p not in pending or offset is None:
                    continue
                if offset < ends[p]:
                    kept.append(m)
                if offset + 1 >= ends[p]:
                    finished.add(p)
            if kept:
                yield kept
            now = time.monotonic()
            if kept or finished:
                last_progress = now
            elif now - last_check >= _GAP_CHECK_S:
                last_check = now
                finished = _nothing_left(consumer, part.topic, pending, ends, idle_timeout_s)
            if finished:
                pending -= finished
                consumer.pause([TopicPartition(part.topic, p) for p in finished])
            elif pending and now - last_progress > idle_timeout_s:
                msg = (
                    f"reading {part.topic}: no record for {idle_timeout_s:.0f}s before the end "
                    f"offsets of partitions {sorted(pending)}"
                )
                raise WalkthroughsError(msg)
    finally:
        consumer.close()


_GAP_CHECK_S = 1.0  # how often a partition that returns nothing is checked for being done


def _nothing_left(
    consumer: Consumer, topic: str, pending: set[int], ends: Mapping[int, int], timeout_s: float
) -> set[int]:
    """The pending partitions with no record left below their end offset.

    The consumer's position passed the end (it steps over transaction markers without
    returning them), or the log start did (retention deleted the rest of the range).
    """
    done: set[int] = set()
    for tp in consumer.position([TopicPartition(topic, p) for p in sorted(pending)]):
        low, _ = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
        if tp.offset >= ends[tp.partition] or low >= ends[tp.partition]:
            done.add(tp.partition)
    return done


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value


def produce_to(
    kafka_config: Mapping[str, str],
    records: Iterable[tuple[str, bytes | None, bytes | None, Headers | None]],
    on_progress: Callable[[int], object] = lambda done: None,
    timeout_s: float = 60,
    on_landed: Callable[[int, int, int], object] = lambda index, partition, offset: None,
) -> int:
    """Produce (topic, key, value, headers) records in order, wait for every acknowledgement.

    ``records`` is consumed as it is produced (a redrive streams millions without holding
    them). ``on_progress`` gets the count handed to the producer so far, ``on_landed`` the
    index, partition and offset of each acknowledged record. Returns the count produced.

    Raises:
        WalkthroughsError: a record was refused or not acknowledged in time (the first refusal
            stops the run: what follows would most likely be refused too), or ``records``
            failed midway; either way after waiting for what was handed over, and saying how
            many records the broker acknowledged.
    """
    failures: list[str] = []
    topics: set[str] = set()
    acked = 0

    def report(index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            nonlocal acked
            if error is not None:
                failures.append(str(error))
            else:
                acked += 1
                on_landed(index, message.partition() or 0, message.offset() or 0)

        return on_delivery

    def fail(why: object) -> WalkthroughsError:
        where = ", ".join(sorted(topics)) or "Kafka"
        return WalkthroughsError(f"producing to {where} failed after {acked} record(s): {why}")

    producer = Producer(producer_config(kafka_config, delivery_timeout_s=timeout_s))
    count = 0
    try:
        for i, (topic, key, value, headers) in enumerate(records):
            topics.add(topic)
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=report(i))
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
            producer.poll(0)
            if failures:
                break
            count = i + 1
            on_progress(count)
    except (KafkaException, WalkthroughsError) as exc:
        producer.flush(timeout_s)  # what was handed over lands, and is counted, before we say so
        raise fail(exc.args[0] if exc.args else exc) from exc
    if producer.flush(timeout_s) or failures:
        raise fail(failures[:1] or "not acknowledged in time")
    return count
