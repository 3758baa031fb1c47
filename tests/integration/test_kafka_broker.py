"""The real broker: topics with explicit partition counts, keyed produce, consume with headers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
RECORDS = 300


@pytest.fixture
def topic(kafka_bootstrap: str, unique_name: str) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics(
        [NewTopic(unique_name, num_partitions=PARTITIONS, replication_factor=1)]
    )
    futures[unique_name].result(timeout=30)
    yield unique_name
    admin.delete_topics([unique_name])[unique_name].result(timeout=30)


def test_admin_creates_the_partition_count_asked(kafka_bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    assert meta.error is None
    assert len(meta.partitions) == PARTITIONS


def test_keyed_round_trip_keeps_key_order_and_headers(kafka_bootstrap: str, topic: str) -> None:
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    errors: list[object] = []
    for i in range(RECORDS):
        producer.produce(
            topic,
            key=f"key-{i % 17}".encode(),
            value=f"{i}".encode(),
            headers=[("error", b"missing field x"), ("source_offset", str(i).encode())],
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert errors == []

    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": topic, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen: dict[bytes | None, list[int]] = defaultdict(list)
    partitions_of: dict[bytes | None, set[int | None]] = defaultdict(set)
    received = 0
    try:
        while received < RECORDS:
            batch = consumer.consume(num_messages=500, timeout=10)
            assert batch, f"only {received} of {RECORDS} records came back"
            for msg in batch:
                assert msg.error() is None
                # What int() and dict() would fail on anyway, made explicit for the type checker.
                value, headers = msg.value(), msg.headers()
                assert value is not None
                assert headers is not None
                seen[msg.key()].append(int(value))
                partitions_of[msg.key()].add(msg.partition())
                assert dict(headers)["error"] == b"missing field x"
                source_offset = dict(headers)["source_offset"]
                assert source_offset is not None
                assert int(source_offset) == int(value)
                received += 1
    finally:
        consumer.close()
    assert received == RECORDS
    assert all(len(parts) == 1 for parts in partitions_of.values()), "a key spans partitions"
    assert all(values == sorted(values) for values in seen.values()), "per-key order lost"
    assert len({p for parts in partitions_of.values() for p in parts}) > 1, "one partition used"
