"""Outputs never drop silently: with no server to write to, the sinks raise (no mocks: a real
client against a port where nothing listens)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypedDict, Unpack

import pytest
from pymongo import MongoClient

from walkthroughs.errors import SinkUnavailableError
from walkthroughs.runtime import stopping
from walkthroughs.sinks.kafka import (
    CheckedProducer,
    KafkaOutput,
    producer_config,
    walkthrough_record,
)
from walkthroughs.sinks.mongo import MongoOutput
from walkthroughs.wire.schema import Attributed, Walkthrough

W = Walkthrough(
    "w", "b", "c", "", 1_900_000_000 * 10**9, "m", 1, "", 1_899_999_000 * 10**9, "2030-03-17"
)


def test_kafka_sink_raises_when_deliveries_fail() -> None:
    sink = KafkaOutput(
        {"bootstrap.servers": "127.0.0.1:1"}, "out", walkthrough_record, delivery_timeout_s=1.0
    )
    part = sink.build("write", 0, 1)
    with pytest.raises(SinkUnavailableError, match="writing to Kafka topic 'out' failed"):
        part.write_batch([("0001", [Attributed(W, 0, False)])])  # returns only once acknowledged


def test_a_dropped_kafka_producer_is_freed_at_once() -> None:
    """Its delivery callback holds no reference back to it: no cycle waits for the collector
    (which runs rarely: ``app.tune_gc``) to stop its librdkafka threads."""
    producer = CheckedProducer(producer_config({"bootstrap.servers": "127.0.0.1:1"}, 1.0), "o", 1.0)
    gone = weakref.ref(producer)
    del producer
    assert gone() is None


class RetryOptions(TypedDict, total=False):
    """The settings of ``MongoOutput`` that these tests choose."""

    retry_limit_s: float
    sleep: Callable[[float], None]
    monotonic: Callable[[], float]


def _unreachable_mongo(**kwargs: Unpack[RetryOptions]) -> MongoOutput:
    return MongoOutput(
        "mongodb://127.0.0.1:1",
        "db",
        client_factory=lambda uri, timeout_s: MongoClient(uri, serverSelectionTimeoutMS=50),
        **kwargs,
    )


def test_mongo_sink_retries_with_backoff_then_raises() -> None:
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:  # time passes only when the sink sleeps
        slept.append(seconds)
        now[0] += seconds

    sink = _unreachable_mongo(retry_limit_s=3.0, sleep=sleep, monotonic=lambda: now[0])
    part = sink.build_part("write", "mongo-00", None)
    with pytest.raises(SinkUnavailableError, match="MongoDB unavailable for 3s during write_walk"):
        part.write_batch([[W]])
    assert slept == [0.2, 0.4, 0.8, 1.6]  # capped exponential backoff, then give up


def test_mongo_sink_stops_retrying_at_once_when_a_stop_is_requested() -> None:
    slept: list[float] = []
    sink = _unreachable_mongo(retry_limit_s=3600.0, sleep=slept.append)
    part = sink.build_part("write", "mongo-00", None)
    stopping.request()
    try:
        with pytest.raises(SinkUnavailableError, match="unavailable until a stop was requested"):
            part.write_batch([[W]])
    finally:
        stopping.reset()
    assert slept == []  # no backoff after the stop request: the first failure ends it
