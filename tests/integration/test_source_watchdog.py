"""A partition whose consumer stopped fetching while records wait gets a new consumer.

librdkafka #4492: after a broker restart a consumer can stop fetching a partition for good,
without an error. The source notices from the lag monitor's high watermark and gives the
partition a new consumer at the next offset to read (``_KafkaPartition._unstick``). Here the
consumer is paused to stop it fetching, on the real broker; time is an injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.dataflow_harness import wait_for
from walkthroughs.runtime import health
from walkthroughs.sources.kafka import _KafkaPartition
from walkthroughs.tools.topics import produce
from walkthroughs.wire.schema import Origin

STUCK_AFTER_S = 30.0


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def topic(kafka_bootstrap: str, unique_name: str) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([NewTopic(unique_name, num_partitions=1, replication_factor=1)])
    futures[unique_name].result(timeout=30)
    yield unique_name
    admin.delete_topics([unique_name])[unique_name].result(timeout=30)


def _partition(kafka_bootstrap: str, topic: str, clock: Clock) -> _KafkaPartition:
    return _KafkaPartition(
        {"bootstrap.servers": kafka_bootstrap},
        topic,
        0,
        None,
        stop_at_end=False,
        timeout_s=10,
        batch_size=100,
        clock=clock,
        stuck_after_s=STUCK_AFTER_S,
    )


def _read(part: _KafkaPartition, count: int) -> list[Origin]:
    """Poll until ``count`` records came (librdkafka fetches in the background)."""
    read: list[Origin] = []

    def enough() -> bool:
        read.extend(part.next_batch())
        return len(read) >= count

    wait_for(enough, timeout_s=30)
    return read


def _measured_high(kafka_bootstrap: str, topic: str) -> int | None:
    health.lag_monitor({"bootstrap.servers": kafka_bootstrap}).measure()
    return health.known_high((topic, 0))


def test_a_stuck_partition_gets_a_new_consumer_that_skips_nothing(
    kafka_bootstrap: str, topic: str
) -> None:
    kafka = {"bootstrap.servers": kafka_bootstrap}
    produce(kafka, topic, [(b"k", b"%d" % i) for i in range(3)])
    clock = Clock()
    part = _partition(kafka_bootstrap, topic, clock)
    try:
        assert [o.offset for o in _read(part, 3)] == [0, 1, 2]
        stuck = part._consumer
        stuck.pause([TopicPartition(topic, 0)])  # fetches nothing more, as #4492 leaves it
        produce(kafka, topic, [(b"k", b"%d" % i) for i in range(3, 5)])
        assert _measured_high(kafka_bootstrap, topic) == 5
        clock.now += STUCK_AFTER_S - 1
        assert part.next_batch() == []
        assert part._consumer is stuck  # not for long enough yet
        clock.now += 1
        part.next_batch()
        assert part._consumer is not stuck
        assert [o.offset for o in _read(part, 2)] == [3, 4]  # nothing skipped, none twice
        assert part.snapshot() == 5
    finally:
        part.close()


def test_a_partition_that_read_everything_keeps_its_consumer(
    kafka_bootstrap: str, topic: str
) -> None:
    produce({"bootstrap.servers": kafka_bootstrap}, topic, [(b"k", b"0"), (b"k", b"1")])
    clock = Clock()
    part = _partition(kafka_bootstrap, topic, clock)
    try:
        assert [o.offset for o in _read(part, 2)] == [0, 1]
        assert _measured_high(kafka_bootstrap, topic) == 2
        consumer = part._consumer
        clock.now += 10 * STUCK_AFTER_S
        assert part.next_batch() == []
        assert part._consumer is consumer
    finally:
        part.close()
