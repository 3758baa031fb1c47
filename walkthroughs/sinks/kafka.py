"""Kafka output that never drops silently: every delivery report is checked before a commit.

Bytewax 0.21's ``KafkaSink`` registers no delivery callback, so records the broker never got are
lost without a word. Ours waits, in ``write_batch``, until the broker acknowledged the whole
batch (``acks=all``, idempotent producer: retries neither reorder nor duplicate), so nothing it
was handed can be lost once Bytewax moves on. A delivery error, a queue that stays full or a
flush that times out raises ``SinkUnavailableError``: the epoch is not committed, the worker
stops, and recovery replays it. At-least-once; downstream the latest record per ``walkin_id`` is
the truth. Every revision of a walk-in is produced by the worker owning its state shard, so they
reach the topic in order.

Records are partitioned like the Java client does (murmur2 of the key), so consumers written with
Kafka Streams can co-partition with the output topic. One producer per process and topic is
shared by all the workers of a process (librdkafka producers are thread-safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

from walkthroughs import failpoints, metrics
from walkthroughs.codec import encode_walkthrough
from walkthroughs.errors import SinkUnavailableError
from walkthroughs.schema import Attributed, DeadLetter

log = logging.getLogger(__name__)
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


class CheckedProducer:
    """A producer that remembers delivery failures until someone checks them."""

    def __init__(self, config: dict[str, object], topic: str, timeout_s: float) -> None:
        self.producer = Producer(config)
        self.topic = topic
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self.failed = False  # set once a failure was raised: the worker is going down
        self.batch_size = metrics.SINK_BATCH_SIZE.labels(f"kafka:{topic}")
        self.retries = metrics.SINK_RETRIES.labels(f"kafka:{topic}")

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            with self._lock:
                self._failures.append(f"{error} (partition {message.partition()})")

    def send(self, records: list[Record]) -> None:
        """Hand records to the producer, waiting (within limits) while its queue is full."""
        deadline = time.monotonic() + self.timeout_s
        for key, value, headers in records:
            while True:
                try:
                    self.producer.produce(
                        self.topic, value, key, headers=headers, on_delivery=self._on_delivery
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain, within limits
                    self.retries.inc()
                    if time.monotonic() > deadline:
                        self._fail(f"local queue stayed full for {self.timeout_s:.0f}s")
                    self.producer.poll(0.05)
        self.producer.poll(0)  # serve delivery callbacks without waiting

    def confirm(self) -> None:
        """Wait until everything sent so far is acknowledged, or raise."""
        failpoints.hit("kafka.before_confirm")
        remaining = self.producer.flush(self.timeout_s)
        if remaining:
            self._fail(f"{remaining} record(s) not acknowledged within {self.timeout_s:.0f}s")
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            self._fail(f"{len(failures)} delivery failure(s), first: {failures[0]}")

    def _fail(self, why: str) -> None:
        msg = f"writing to Kafka topic {self.topic!r} failed: {why}; stopping so recovery replays"
        # Logged as well as raised: a multi-process Bytewax cluster may not print the traceback.
        log.error("kafka_sink_failed", extra={"fields": {"topic": self.topic, "reason": why}})
        self.failed = True
        raise SinkUnavailableError(msg)


class KafkaOutput(DynamicSink[tuple[str, X]], Generic[X]):
    """Writes ``(routing key, item)`` pairs from every worker, where they are produced.

    Dynamic, not partitioned: routing each record to a sink partition would cost a Python
    ``part_fn`` call per record and, with several workers, a hop to the worker owning the
    partition. Order needs none of that: every output of a state shard comes from the one worker
    that owns the shard, through its process's producer, in order.
    """

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
        # Wait as long as librdkafka keeps trying (a pass-through may have changed it).
        self._timeout_s = int(str(self._config["message.timeout.ms"])) / 1000
        # All workers of a process share this sink object, hence one producer per process.
        self._producer: CheckedProducer | None = None
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaWriter[X]:
        """Attach the worker to this process's producer for the topic."""
        with self._lock:
            if self._producer is None:
                self._producer = CheckedProducer(self._config, self._topic, self._timeout_s)
            return _KafkaWriter(self._producer, self._serialize)


class _KafkaWriter(StatelessSinkPartition[tuple[str, X]], Generic[X]):
    def __init__(self, producer: CheckedProducer, serialize: Serializer[X]) -> None:
        self._producer = producer
        self._serialize = serialize

    def write_batch(self, items: list[tuple[str, X]]) -> None:
        self._producer.batch_size.observe(len(items))
        serialize = self._serialize
        self._producer.send([serialize(item) for _, item in items])
        # Acknowledged before returning, so an epoch never commits ahead of its records: our
        # kill -9 tests showed that Bytewax 0.21 can commit an epoch before a sink's snapshot()
        # ran for it, so waiting at epoch close is not safe.
        self._producer.confirm()

    def close(self) -> None:
        # Bytewax also closes partitions while a failure unwinds the worker; raising again then
        # would abort the process and hide the first error.
        if not self._producer.failed:
            self._producer.confirm()
