"""Kafka input: every partition of the input topics, offsets kept in Bytewax recovery.

Why not Bytewax 0.21's ``KafkaSource``: its bounded mode ends at the first partition-EOF event
(wherever the partition's end is when it gets there, not where it was at start-up), and with no
broker it blocks forever listing partitions. This source:

* lists partitions with a timeout and fails at start-up with a message naming the topic or the
  unreachable bootstrap servers;
* in bounded mode, reads each partition up to the end offset (high watermark) it had when the
  worker listed the partitions at start-up, then ends; with recovery, a later run resumes after
  the last offset read;
* emits ``Origin`` records (topic, partition, offset, key, value): decoding is the next step's job;
* never blocks the worker: it polls librdkafka's prefetch queue without waiting and asks Bytewax
  to come back a little later when the queue is empty.

Partition names are ``<topic>#<partition>``; they are part of the recovery format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import TopicMetadata

from walkthroughs.errors import WalkthroughsError
from walkthroughs.runtime import health, metrics
from walkthroughs.runtime.kafka_logs import with_log_relay
from walkthroughs.wire.schema import Origin, new_origin

log = logging.getLogger(__name__)

IDLE_BACKOFF = timedelta(milliseconds=20)  # how long to leave an empty partition alone
STUCK_AFTER_S = 30.0
"""Polls that find nothing for this long, while the partition has records past what was read,
get the partition a new consumer (``_KafkaPartition._unstick``)."""


class SourceError(WalkthroughsError):
    """The input topics cannot be read: unreachable brokers, missing topics, fatal errors."""


FRESH_METADATA = {"topic.metadata.refresh.interval.ms": "10000"}
"""Ask for the partitions' leaders every 10 s rather than librdkafka's 5 minutes. After a broker
restart a client can be left asking with the leader epoch it knew before (FENCED_LEADER_EPOCH);
seen with the admin client's ``list_offsets`` for the whole of a test's 90 s, and a partition
consumer that stops fetching after a restart is librdkafka #4492's symptom. A periodic refresh
bounds either to seconds, for one small metadata request per client every 10 s."""


def consumer_config(kafka_config: Mapping[str, str]) -> dict[str, object]:
    """Return the settings of our partition consumers (assigned, never subscribed)."""
    return with_log_relay(
        {
            # Offsets live in Bytewax recovery; the group id only names the client to the broker.
            "group.id": "walkthroughs",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # retention deleted what we had not read: keep going
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            # Each partition has its own consumer, so these prefetch bounds are per partition: at
            # most 5,000 records or 2 MiB, a fraction of a second of reading. librdkafka's defaults
            # (100,000 records, 64 MiB) times many partitions would rival the state for memory, and
            # while a stalled sink holds the worker the prefetch is what fills: with these bounds
            # the process's memory stops growing within a minute however long the backlog grows.
            "queued.min.messages": 5000,
            "queued.max.messages.kbytes": 2048,
            **FRESH_METADATA,
            **kafka_config,
        }
    )


Watermarks = dict[str, tuple[int, int]]  # "<topic>#<partition>" -> (low, high) offsets


def list_partitions(
    kafka_config: Mapping[str, str],
    topics: Sequence[str],
    timeout_s: float,
    *,
    roles: Mapping[str, str] | None = None,
    watermarks: Watermarks | None = None,
) -> dict[str, int]:
    """Return the partition count of each topic, or raise ``SourceError`` saying what is wrong.

    ``roles`` names each topic in the error ("output topic (WALKTHROUGHS_OUTPUT_TOPIC)");
    topics without one are input topics. Given a ``watermarks`` dict, it is filled with every
    partition's low and high offsets, read with the same client.
    """
    consumer = Consumer(consumer_config(kafka_config))
    try:
        meta = consumer.list_topics(timeout=timeout_s)
        counts = _counts(meta.topics, topics, roles or {})
        if watermarks is not None:
            for topic, n in counts.items():
                for p in range(n):
                    watermarks[f"{topic}#{p}"] = _watermarks(consumer, topic, p, timeout_s)
    except KafkaException as exc:
        raise SourceError(kafka_failure(kafka_config, exc, timeout_s)) from exc
    finally:
        consumer.close()
    return counts


_UNREACHABLE = frozenset(
    (
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
    )
)


_REFUSAL_SETTINGS = {  # what to check when the cluster answers but refuses
    KafkaError._AUTHENTICATION: "WALKTHROUGHS_KAFKA_SASL_*",
    KafkaError._SSL: "WALKTHROUGHS_KAFKA_SSL_*",
    KafkaError.SASL_AUTHENTICATION_FAILED: "WALKTHROUGHS_KAFKA_SASL_*",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "the ACLs of WALKTHROUGHS_KAFKA_SASL_USERNAME",
}


def kafka_failure(
    kafka_config: Mapping[str, object], exc: KafkaException, timeout_s: float | None = None
) -> str:
    """One line for a failed call to Kafka, naming the settings to check (dataflow and CLI).

    ``timeout_s`` is the start-up timeout the call had, if it had that one.
    """
    bootstrap = kafka_config.get("bootstrap.servers")
    error = exc.args[0] if exc.args else None
    text = error.str() if isinstance(error, KafkaError) else str(exc)
    if isinstance(error, KafkaError) and error.code() not in _UNREACHABLE:
        check = _REFUSAL_SETTINGS.get(error.code(), "WALKTHROUGHS_KAFKA_BOOTSTRAP")
        return f"Kafka at {bootstrap} ({check}) refused: {text}"
    if timeout_s is None:
        return f"cannot reach Kafka at {bootstrap} (WALKTHROUGHS_KAFKA_BOOTSTRAP): {text}"
    return (
        f"cannot reach Kafka at {bootstrap} within {timeout_s:.0f}s "
        f"(WALKTHROUGHS_KAFKA_BOOTSTRAP, WALKTHROUGHS_STARTUP_TIMEOUT): {text}"
    )


def _counts(
    found_topics: Mapping[str, TopicMetadata], topics: Sequence[str], roles: Mapping[str, str]
) -> dict[str, int]:
    """The partition count of each topic in the cluster's metadata; a missing one is an error."""
    counts: dict[str, int] = {}
    for topic in topics:
        found = found_topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            why = found.error if found is not None and found.error else "it does not exist"
            role = roles.get(topic, "input topic")
            msg = f"{role} {topic!r} cannot be used: {why} (create it, or fix the setting)"
            raise SourceError(msg)
        counts[topic] = len(found.partitions)
    return counts


def _watermarks(
    consumer: Consumer, topic: str, partition: int, timeout_s: float
) -> tuple[int, int]:
    """A partition's (low, high) offsets, asked of the broker; an error names the partition."""
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s
        )
    except KafkaException as exc:
        msg = f"cannot read the end offset of {topic}#{partition}: {exc.args[0]}"
        raise SourceError(msg) from exc
    return low, high


class KafkaInput(FixedPartitionedSource[Origin, int]):
    """All partitions of the given topics; resume state = the next offset to read."""

    def __init__(
        self,
        kafka_config: Mapping[str, str],
        topics: Sequence[str],
        *,
        stop_at_end: bool,
        startup_timeout_s: float,
        batch_size: int = 2000,
    ) -> None:
        self._config = dict(kafka_config)
        self._topics = list(topics)
        self._stop_at_end = stop_at_end
        self._timeout_s = startup_timeout_s
        self._batch_size = batch_size
        self._watermarks: Watermarks = {}

    def list_parts(self) -> list[str]:
        """List every partition of every topic (each worker can read all of them).

        In bounded mode, also read where each partition ends now. Here, not in ``build_part``:
        Bytewax builds partitions once the whole cluster is running, and while one worker
        waits on the broker there, every other worker's input spins at full CPU (Bytewax
        0.21 re-activates a partitioned input at once while the cluster's progress lags);
        listing happens before that, while workers sleep.
        """
        watermarks: Watermarks | None = {} if self._stop_at_end else None
        counts = list_partitions(self._config, self._topics, self._timeout_s, watermarks=watermarks)
        if watermarks:
            self._watermarks.update(watermarks)
        return [f"{topic}#{p}" for topic, n in counts.items() for p in range(n)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaPartition:
        """Open one partition at its resume offset (or the beginning)."""
        topic, _, partition = for_part.rpartition("#")
        return _KafkaPartition(
            self._config,
            topic,
            int(partition),
            resume_state,
            stop_at_end=self._stop_at_end,
            timeout_s=self._timeout_s,
            batch_size=self._batch_size,
            watermarks=self._watermarks.get(for_part),
        )


class _KafkaPartition(StatefulSourcePartition[Origin, int]):
    def __init__(
        self,
        kafka_config: Mapping[str, str],
        topic: str,
        partition: int,
        resume_offset: int | None,
        *,
        stop_at_end: bool,
        timeout_s: float,
        batch_size: int,
        watermarks: tuple[int, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stuck_after_s: float = STUCK_AFTER_S,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._batch_size = batch_size
        self._config = kafka_config
        self._consumer = Consumer(consumer_config(kafka_config))
        self._clock = clock
        self._stuck_after_s = stuck_after_s
        self._progress_at = clock()  # when a poll last found records
        self._tp = TopicPartition(topic, partition)
        self._end: int | None = None
        if stop_at_end:
            if watermarks is None:  # not listed by this process: ask now
                watermarks = _watermarks(self._consumer, topic, partition, timeout_s)
            low, high = watermarks
            self._end = high
            start = max(low, resume_offset or 0)
        else:
            start = resume_offset if resume_offset is not None else OFFSET_BEGINNING
        self._next = resume_offset if resume_offset is not None else 0
        self._done = self._end is not None and start >= self._end
        if not self._done:
            self._consumer.assign([TopicPartition(topic, partition, start)])
        self._idle_until: datetime | None = None
        self._read = metrics.RECORDS_READ.labels(topic)
        self._key = (topic, partition)
        if not self._done:
            health.PROGRESS.beat(self._key)
            health.lag_monitor({**FRESH_METADATA, **kafka_config}).track(self._key, self.snapshot)

    def next_batch(self) -> list[Origin]:
        """Return what librdkafka has prefetched, without waiting; end at the end offset."""
        if self._done:
            self._leave()
            raise StopIteration
        health.PROGRESS.beat(self._key)
        messages = self._consumer.consume(self._batch_size, 0)
        batch: list[Origin] = []
        for m in messages:
            error = m.error()
            if error is not None:
                self._on_error(error)
                continue
            offset = m.offset()
            if offset is None:
                continue
            if self._end is not None and offset >= self._end:
                self._done = True
                break
            batch.append(
                new_origin((self._topic, self._partition, offset, m.key(), m.value(), m.headers()))
            )
            self._next = offset + 1
        if self._end is not None and not self._done:
            self._done = self._next >= self._end or self._caught_up_past_gaps()
        if batch:
            self._progress_at = self._clock()
        elif not self._done and self._clock() - self._progress_at >= self._stuck_after_s:
            self._unstick()
        self._idle_until = None if batch else datetime.now(UTC) + IDLE_BACKOFF
        self._read.inc(len(batch))
        return batch

    def next_awake(self) -> datetime | None:
        """Come back soon, not at once, when the last poll found nothing."""
        return self._idle_until

    def snapshot(self) -> int:
        """Return the next offset to read."""
        return self._next

    def close(self) -> None:
        """Leave the partition."""
        self._leave()
        self._consumer.close()

    def _leave(self) -> None:
        health.leave(self._key)

    def _unstick(self) -> None:
        """Give the partition a new consumer if its own stopped fetching while records wait.

        librdkafka #4492: after a broker restart, a consumer can stop fetching a partition for
        good, silently (no error reaches ``consume``). Seen here as a live run that read nothing
        more after a restart. Called once polls have found nothing for ``stuck_after_s``; acts
        only if the lag monitor's last high watermark is past both what was read and the
        consumer's fetch position (which passes the gaps of compaction and transaction markers).
        The new consumer starts at the next offset to read: nothing is skipped or read twice.
        """
        self._progress_at = self._clock()  # look again only after another period
        high = health.known_high(self._key)
        if high is None or high <= self._next:
            return
        if self._fetch_position() >= high:
            return
        log.warning(
            "kafka_partition_reassigned",
            extra={
                "fields": {
                    "topic": self._topic,
                    "partition": self._partition,
                    "next_offset": self._next,
                    "high_watermark": high,
                    "idle_s": self._stuck_after_s,
                }
            },
        )
        stuck, self._consumer = self._consumer, Consumer(consumer_config(self._config))
        self._consumer.assign([TopicPartition(self._topic, self._partition, self._next)])
        stuck.close()

    def _fetch_position(self) -> int:
        """The offset the consumer fetches next (negative before its first fetch)."""
        (tp,) = self._consumer.position([self._tp])
        return int(tp.offset)

    def _caught_up_past_gaps(self) -> bool:
        """Whether the fetch position passed the end (compaction or markers leave offset gaps)."""
        position = self._fetch_position()
        if position >= 0 and self._end is not None and position >= self._end:
            self._next = max(self._next, self._end)
            return True
        return False

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            msg = f"fatal Kafka error reading {self._topic}#{self._partition}: {error}"
            raise SourceError(msg)
        # Transient (broker down, leader moving): librdkafka retries by itself.
        log.warning(
            "kafka_consume_error",
            extra={
                "fields": {"topic": self._topic, "partition": self._partition, "error": str(error)}
            },
        )
