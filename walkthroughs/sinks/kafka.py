"""Kafka output that never drops silently: every delivery report is checked.

Bytewax 0.21's ``KafkaSink`` registers no delivery callback, so records the broker never got are
lost without a word. Ours produces a batch, waits until the broker acknowledged all of it
(``acks=all``, idempotent producer, so retries neither reorder nor duplicate), and raises
``SinkUnavailableError`` on any delivery error or when the local queue stays full. The worker then
stops, and recovery replays the epoch: at-least-once, and the outputs are idempotent downstream
(the latest record per ``walkin_id`` is the truth; dead letters are reports).

Records are partitioned like the Java client does (murmur2 of the key), so consumers written with
Kafka Streams can co-partition with the output topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from walkthroughs.codec import encode_walkthrough
from walkthroughs.errors import SinkUnavailableError
from walkthroughs.schema import Attributed, DeadLetter

X = TypeVar("X")
Headers = list[tuple[str, str | bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers | None]  # key, value, headers
Serializer = Callable[[X], Record]


def walkthrough_record(item: Attributed) -> Record:
    """Output topic record: key = walkin_id (UTF-8), value = Walkthrough bytes."""
    w = item.walkthrough
    return w.walkin_id.encode(), encode_walkthrough(w), None


def dead_letter_record(item: DeadLetter) -> Record:
    """DLQ record: the original key and bytes, with the reason and where they came from."""
    o = item.origin
    headers: Headers = [
        ("error", item.error.encode()),
        ("source_topic", o.topic.encode()),
        ("source_partition", str(o.partition).encode()),
        ("source_offset", str(o.offset).encode()),
    ]
    return o.key, o.value, headers


def producer_config(
    kafka_config: Mapping[str, str], delivery_timeout_s: float
) -> dict[str, object]:
    """Return the settings of our producers: durable, ordered, Java-compatible partitioning."""
    return {
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        **kafka_config,
    }


class KafkaOutput(DynamicSink[X], Generic[X]):
    """One producer per worker writing to ``topic``; see the module docstring."""

    def __init__(
        self,
        kafka_config: Mapping[str, str],
        topic: str,
        serialize: Serializer[X],
        *,
        delivery_timeout_s: float = 30.0,
    ) -> None:
        self._config = producer_config(kafka_config, delivery_timeout_s)
        self._topic = topic
        self._serialize = serialize
        self._timeout_s = delivery_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaWriter[X]:
        """Open this worker's producer."""
        return _KafkaWriter(self._config, self._topic, self._serialize, self._timeout_s)


class _KafkaWriter(StatelessSinkPartition[X], Generic[X]):
    def __init__(
        self, config: dict[str, object], topic: str, serialize: Serializer[X], timeout_s: float
    ) -> None:
        self._producer = Producer(config)
        self._topic = topic
        self._serialize = serialize
        self._timeout_s = timeout_s
        self._failures: list[str] = []

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"{error} (partition {message.partition()})")

    def write_batch(self, items: list[X]) -> None:
        deadline = time.monotonic() + self._timeout_s
        for item in items:
            key, value, headers = self._serialize(item)
            while True:
                try:
                    self._producer.produce(
                        self._topic, value, key, headers=headers, on_delivery=self._on_delivery
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain, within limits
                    if time.monotonic() > deadline:
                        self._fail(f"local queue stayed full for {self._timeout_s:.0f}s")
                    self._producer.poll(0.05)
        remaining = self._producer.flush(max(0.0, deadline - time.monotonic()) + self._timeout_s)
        if remaining:
            self._fail(f"{remaining} record(s) not acknowledged in time")
        if self._failures:
            self._fail(f"{len(self._failures)} delivery failure(s), first: {self._failures[0]}")

    def close(self) -> None:
        self._producer.flush(self._timeout_s)

    def _fail(self, why: str) -> None:
        msg = f"writing to Kafka topic {self._topic!r} failed: {why}; stopping so recovery replays"
        raise SinkUnavailableError(msg)
