"""Kafka output that never drops silently: every delivery report is checked before a commit.

Bytewax 0.21's ``KafkaSink`` registers no delivery callback, so records the broker never got are
lost without a word. Ours waits, in ``write_batch``, until the broker acknowledged the whole
batch (``acks=all``, idempotent producer: retries neither reorder nor duplicate), so nothing it
was handed can be lost once Bytewax moves on. A delivery error, a queue that stays full or a
flush that times out raises ``SinkUnavailableError``: the epoch is not committed, the worker
stops, and recovery replays it. At-least-once; downstream the latest record per ``walkin_id`` is
the truth. Every revision of a walk-in is produced by the worker owning its state shard, so they
reach the topic in order.

A dead letter too large for the DLQ topic (an input record a producer compressed past the
limit) is cut to fit with a header saying so (``fit_record``): a bad record never stops the
dataflow, not even on every restart. Walkthroughs always fit: ids are at most 1 KiB and start-up
refuses an output topic that takes records smaller than ``startup.SMALLEST_RECORD_LIMIT``.

Records are partitioned like the Java client does (murmur2 of the key), so consumers written with
Kafka Streams can co-partition with the output topic. One producer per process and topic is
shared by all the workers of a process (librdkafka producers are thread-safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Generic, NoReturn, TypeVar, cast

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from walkthroughs.errors import SinkUnavailableError
from walkthroughs.runtime import failpoints, metrics, stopping
from walkthroughs.runtime.kafka_logs import PUMP, with_log_relay
from walkthroughs.wire.codec import WALKTHROUGH_INDEXES, encode_walkthrough
from walkthroughs.wire.dead_letter_headers import carried_headers
from walkthroughs.wire.framing import frame
from walkthroughs.wire.schema import Attributed, DeadLetter, Tombstone

log = logging.getLogger(__name__)
_FLUSH_SLICE_S = 1.0  # a flush waits in slices of this, so that a stop request ends it
X = TypeVar("X")
Headers = list[tuple[str, str | bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers | None]  # key, value, headers
Serializer = Callable[[X], Record]


def walkthrough_record(item: Attributed | Tombstone) -> Record:
    """Output topic record: key = walkin_id (UTF-8), value = Walkthrough bytes (None: erased)."""
    if item.__class__ is Tombstone:
        return tombstone_record(item.walkin_id)
    w = cast(Attributed, item).walkthrough
    return w.walkin_id.encode(), encode_walkthrough(w), None


def framed_walkthrough_record(schema_id: int) -> Serializer[Attributed | Tombstone]:
    """``walkthrough_record`` with values framed for a Schema Registry (tombstones stay null)."""

    def record(item: Attributed | Tombstone) -> Record:
        key, value, headers = walkthrough_record(item)
        if value is not None:
            value = frame(value, schema_id, WALKTHROUGH_INDEXES)
        return key, value, headers

    return record


def tombstone_record(walkin_id: str) -> Record:
    """The record that makes compaction remove a walk-in's walkthroughs from the output topic."""
    return walkin_id.encode(), None, None


MAX_ERROR_BYTES = 4096
"""An ``error`` header is cut to this size (a ``late`` error quotes ids; each is at most 1 KiB)."""
_HEADER_OVERHEAD = 10  # per header: two length varints, with room to spare
_FIT_SLACK = 256  # room for the headers that say what was cut


def dead_letter_record(item: DeadLetter) -> Record:
    """DLQ record: the original key and bytes, with the reason and where they came from.

    A record that ``dlq redrive`` sent keeps its redrive headers (``dead_letters``): the loop
    guard counts attempts with them.
    """
    o = item.origin
    error = item.error.encode()
    if len(error) > MAX_ERROR_BYTES:
        error = error[: MAX_ERROR_BYTES - 3] + b"..."
    headers: Headers = [
        ("error", error),
        ("source_topic", o.topic.encode()),
        ("source_partition", str(o.partition).encode()),
        ("source_offset", str(o.offset).encode()),
    ]
    if o.headers:
        headers += carried_headers(o.headers)
    return o.key, o.value, headers


def fit_record(record: Record, limit: int) -> Record:
    """Cut a record's value (and, if it alone is too large, its key) to fit in ``limit`` bytes.

    The headers are kept whole, plus ``value_truncated`` / ``key_truncated`` holding the
    original size in bytes (decimal), so a reader knows the bytes are a prefix.
    """
    key, value, headers = record
    kept: Headers = list(headers or [])
    header_bytes = sum(len(n) + len(v or b"") + _HEADER_OVERHEAD for n, v in kept)
    room = max(0, limit - header_bytes - _FIT_SLACK)
    key_size, value_size = len(key or b""), len(value or b"")
    if key is not None and key_size > room // 2 and key_size + value_size > room:
        key = key[: room // 2]
        kept.append(("key_truncated", str(key_size).encode()))
    value_room = room - len(key or b"")
    if value is not None and value_size > value_room:
        value = value[:value_room]
        kept.append(("value_truncated", str(value_size).encode()))
    return key, value, kept


def producer_config(
    kafka_config: Mapping[str, str],
    delivery_timeout_s: float,
    max_record_bytes: int | None = None,
) -> dict[str, object]:
    """Return the settings of our producers: durable, ordered, Java-compatible partitioning.

    ``max_record_bytes`` (from ``startup.record_limit``) caps records and batches at what the
    topic's broker accepts, so that an oversized record is refused by ``produce()`` itself, where
    ``CheckedProducer`` can cut it, not by the broker after the batch was sent.
    """
    config: dict[str, object] = {
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        **kafka_config,
    }
    if max_record_bytes is not None:
        config["message.max.bytes"] = max_record_bytes
        batch = int(str(config.get("batch.size", max_record_bytes)))
        config["batch.size"] = min(batch, max_record_bytes)
    return with_log_relay(config)


def _collect_failure(
    lock: threading.Lock, failures: list[str], error: KafkaError | None, message: Message
) -> None:
    """A producer's delivery callback: keep what failed, for ``CheckedProducer.confirm``."""
    if error is not None:
        with lock:
            failures.append(f"{error} (partition {message.partition()})")


class CheckedProducer:
    """A producer that remembers delivery failures until someone checks them."""

    def __init__(
        self,
        config: dict[str, object],
        topic: str,
        timeout_s: float,
        *,
        cut_to_fit: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._failures: list[str] = []
        # One delivery callback for the producer, not one per record: a per-call ``on_delivery``
        # (and a ``headers=None``) costs ~0.4 us of every produce call. The callback holds the
        # failure list and its lock, not this object: no reference cycle keeps a dropped
        # producer (and its librdkafka threads) alive until a cyclic collection.
        self.producer = Producer(
            {**config, "on_delivery": partial(_collect_failure, self._lock, self._failures)}
        )
        PUMP.register(self, self.producer)  # its log is served while it has nothing to write
        self.topic = topic
        self.timeout_s = timeout_s
        limit = config.get("message.max.bytes")
        # The size records are cut to (dead letters), if cutting is allowed on this topic.
        self.max_record_bytes = int(str(limit)) if cut_to_fit and limit is not None else None
        self.failed = False  # set once a failure was raised: the worker is going down
        self.batch_size = metrics.SINK_BATCH_SIZE.labels(f"kafka:{topic}")
        self.retries = metrics.SINK_RETRIES.labels(f"kafka:{topic}")

    def send(self, records: list[Record]) -> None:
        """Hand records to the producer, waiting (within limits) while its queue is full.

        With ``cut_to_fit``, a record larger than the producer accepts (``message.max.bytes``,
        which ``producer_config`` sets to the topic's limit) is cut (``fit_record``) rather
        than stopping the worker on every restart; otherwise it fails the sink.
        """
        deadline = time.monotonic() + self.timeout_s
        produce, topic = self.producer.produce, self.topic
        for record in records:
            key, value, headers = record
            cut = False
            while True:
                try:
                    if headers is None:
                        produce(topic, value, key)
                    else:
                        produce(topic, value, key, headers=headers)
                    break
                except BufferError:  # local queue full: let deliveries drain, within limits
                    self.retries.inc()
                    if time.monotonic() > deadline or stopping.requested():
                        self._fail(f"local queue stayed full for {self.timeout_s:.0f}s")
                    self.producer.poll(0.05)
                except KafkaException as exc:
                    error, limit = exc.args[0], self.max_record_bytes
                    if cut or limit is None or error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
                        self._fail(f"produce refused a record: {error.str()}")
                    key, value, headers = fit_record(record, limit)
                    cut = True
                    log.warning(
                        "record_cut_to_fit",
                        extra={
                            "fields": {
                                "topic": self.topic,
                                "key_bytes": len(record[0] or b""),
                                "value_bytes": len(record[1] or b""),
                                "limit": self.max_record_bytes,
                            }
                        },
                    )
        self.producer.poll(0)  # serve delivery callbacks without waiting

    def confirm(self) -> None:
        """Wait until everything sent so far is acknowledged, or raise.

        Waits up to the delivery timeout, in slices, so that a stop request ends the wait: the
        records of an epoch that is not committed are produced again by its replay.
        """
        failpoints.hit("kafka.before_confirm")
        deadline = time.monotonic() + self.timeout_s
        remaining = self.producer.flush(min(self.timeout_s, _FLUSH_SLICE_S))
        while remaining and time.monotonic() < deadline and not stopping.requested():
            remaining = self.producer.flush(min(deadline - time.monotonic(), _FLUSH_SLICE_S))
        if remaining:
            why = "a stop was requested" if stopping.requested() else f"{self.timeout_s:.0f}s"
            self._fail(f"{remaining} record(s) not acknowledged within {why}")
        with self._lock:
            failures = self._failures[:]  # emptied in place: the callback holds this list
            self._failures.clear()
        if failures:
            self._fail(f"{len(failures)} delivery failure(s), first: {failures[0]}")

    def _fail(self, why: str) -> NoReturn:
        msg = f"writing to Kafka topic {self.topic!r} failed: {why}; stopping so recovery replays"
        # Logged as well as raised: a multi-process Bytewax cluster may not print the traceback.
        log.error("kafka_sink_failed", extra={"fields": {"topic": self.topic, "reason": why}})
        self.failed = True
        raise SinkUnavailableError(msg)


class KafkaOutput(DynamicSink[tuple[str, list[X]]], Generic[X]):
    """Writes ``(routing key, parcel)`` pairs from every worker, where they are produced.

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
        max_record_bytes: int | None = None,
        cut_to_fit: bool = False,
    ) -> None:
        self._config = producer_config(kafka_config, delivery_timeout_s, max_record_bytes)
        # Reports of failures only: ``confirm`` waits with ``flush`` and only failures need a
        # look, so a delivered record costs no Python callback.
        self._config.setdefault("delivery.report.only.error", True)
        self._topic = topic
        self._serialize = serialize
        self._cut_to_fit = cut_to_fit
        # Wait as long as librdkafka keeps trying (a pass-through may have changed it).
        self._timeout_s = int(str(self._config["message.timeout.ms"])) / 1000
        # All workers of a process share this sink object, hence one producer per process.
        self._producer: CheckedProducer | None = None
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaWriter[X]:
        """Attach the worker to this process's producer for the topic."""
        with self._lock:
            if self._producer is None:
                self._producer = CheckedProducer(
                    self._config, self._topic, self._timeout_s, cut_to_fit=self._cut_to_fit
                )
            return _KafkaWriter(self._producer, self._serialize)


class _KafkaWriter(StatelessSinkPartition[tuple[str, list[X]]], Generic[X]):
    def __init__(self, producer: CheckedProducer, serialize: Serializer[X]) -> None:
        self._producer = producer
        self._serialize = serialize

    def write_batch(self, items: list[tuple[str, list[X]]]) -> None:
        serialize = self._serialize
        records = [serialize(item) for _, parcel in items for item in parcel]
        self._producer.batch_size.observe(len(records))
        self._producer.send(records)
        # Acknowledged before returning, so an epoch never commits ahead of its records: our
        # kill -9 tests showed that Bytewax 0.21 can commit an epoch before a sink's snapshot()
        # ran for it, so waiting at epoch close is not safe.
        self._producer.confirm()

    def close(self) -> None:
        # Bytewax also closes partitions while a failure unwinds the worker; raising again then
        # would abort the process and hide the first error.
        if not self._producer.failed:
            self._producer.confirm()


class TombstoneWriter:
    """Writes tombstones for the MongoDB sink's erasures: the ids state no longer holds.

    One producer per process, made on first use (most runs erase nothing), shared by the
    sink's partitions; each call returns once the broker acknowledged its records.
    """

    def __init__(self, kafka_config: Mapping[str, str], topic: str, timeout_s: float) -> None:
        self._config = producer_config(kafka_config, timeout_s)
        self._topic = topic
        self._timeout_s = timeout_s
        self._producer: CheckedProducer | None = None
        self._lock = threading.Lock()

    def __call__(self, walkin_ids: Sequence[str]) -> None:
        """Tombstone each id on the output topic and wait for the acknowledgements."""
        with self._lock:
            if self._producer is None:
                self._producer = CheckedProducer(self._config, self._topic, self._timeout_s)
            self._producer.send([tombstone_record(i) for i in walkin_ids])
            self._producer.confirm()
