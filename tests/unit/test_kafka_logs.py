"""librdkafka's log lines reach our logger, one per kind of message per interval, with a count."""

from __future__ import annotations

import gc
import logging
import threading

import pytest
from confluent_kafka import Consumer

from walkthroughs.runtime.kafka_logs import (
    DISCARD,
    MAX_KINDS,
    PUMP,
    RELAY,
    KafkaLogRelay,
    LogPump,
    with_log_relay,
)
from walkthroughs.runtime.startup import probe_config
from walkthroughs.sinks.kafka import CheckedProducer, producer_config
from walkthroughs.sources.kafka import consumer_config

REFUSED = "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {ms}ms in state CONNECT)"  # noqa: E501


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def relay(caplog: pytest.LogCaptureFixture) -> tuple[KafkaLogRelay, Clock]:
    clock = Clock()
    caplog.set_level(logging.DEBUG, logger="test.kafka")
    return KafkaLogRelay(logging.getLogger("test.kafka"), interval_s=30, clock=clock), clock


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [{"level": r.levelno, **r.fields} for r in caplog.records]  # type: ignore[attr-defined]


def test_one_failure_seen_by_every_client_is_one_line_per_interval(
    relay: tuple[KafkaLogRelay, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, clock = relay
    for i in range(300):  # 4 clients, each retrying: one event every 0.15 s, for 45 s
        clock.now = i * 0.15
        client = f"rdkafka#consumer-{i % 4}"
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", client, REFUSED.format(ms=i % 7))
    lines = _lines(caplog)
    assert [line["level"] for line in lines] == [logging.ERROR, logging.ERROR]  # t=0, t=30
    assert lines[0]["text"] == REFUSED.format(ms=0)
    assert lines[0]["facility"] == "FAIL"
    assert lines[0]["client"] == "rdkafka#consumer-0"
    assert "repeats_left_out" not in lines[0]
    assert lines[1]["repeats_left_out"] == 199  # events 1 to 199
    clock.now = 100.0  # quiet for long: the next one is logged at once, with what was left out
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-9", REFUSED.format(ms=3))
    assert [line.get("repeats_left_out") for line in _lines(caplog)] == [None, 199, 99]


def test_different_messages_and_levels_are_logged_apart(
    relay: tuple[KafkaLogRelay, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, _ = relay
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "c", REFUSED.format(ms=0))
    log.log(logging.WARNING, "%s [%s] %s", "FAIL", "c", REFUSED.format(ms=0))
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "c", "Disconnected (after 5ms in state UP)")
    log.log(logging.ERROR, "%s [%s] %s", "REQTMOUT", "c", "Timed out 1 in-flight request")
    log.log(logging.ERROR, "%s [%s] %s", "REQTMOUT", "c", "Timed out 2 in-flight requests")
    assert len(_lines(caplog)) == 5  # only durations are blanked: counts that differ are news


def test_kinds_remembered_are_bounded(
    relay: tuple[KafkaLogRelay, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, _ = relay
    for i in range(MAX_KINDS * 3):
        log.log(logging.INFO, "%s [%s] %s", "X", "c", f"message {i}")
    assert len(log._kinds) == MAX_KINDS
    assert len(_lines(caplog)) == MAX_KINDS * 3


def test_a_client_given_the_relay_logs_through_it_only_when_polled() -> None:
    """confluent-kafka queues the events and serves them from poll: nothing on stderr itself."""
    seen: list[str] = []

    class Recorder:
        def log(self, level: int, msg: str, *args: object) -> None:
            seen.append(msg % args)

    config = with_log_relay({"bootstrap.servers": "127.0.0.1:1", "group.id": "g"})
    assert config["logger"] is not None
    consumer = Consumer({**config, "logger": Recorder()})
    try:
        for _ in range(20):
            consumer.poll(0.1)
            if seen:
                break
    finally:
        consumer.close()
    assert any("Connection refused" in line for line in seen), seen
    assert with_log_relay({"logger": DISCARD})["logger"] is DISCARD  # a chosen logger stays


def test_the_pump_polls_what_it_holds_and_lets_go_of_what_is_dropped() -> None:
    polls: list[float] = []

    class Client:
        def poll(self, timeout: float = 0) -> int:
            polls.append(timeout)
            return 0

    class Owner:
        pass

    pump, owner = LogPump(), Owner()
    pump.register(owner, Client())
    pump.pump()
    assert polls == [0]
    del owner
    gc.collect()
    pump.pump()
    assert polls == [0]  # the client went with its owner
    assert len(pump._owners) == 0


def test_an_idle_producer_is_pumped_so_its_log_is_served() -> None:
    """A producer with nothing to write is never polled by its sink: the pump polls it."""
    seen: list[str] = []

    class Recorder:
        def log(self, level: int, msg: str, *args: object) -> None:
            seen.append(msg % args)

    kafka = {"bootstrap.servers": "127.0.0.1:1"}
    config = producer_config(kafka, delivery_timeout_s=5)
    for made in (config, consumer_config(kafka), probe_config(kafka)):
        assert made["logger"] is RELAY  # every client of the service logs through the relay
    idle = CheckedProducer({**config, "logger": Recorder()}, "t", timeout_s=5)
    assert idle in PUMP._owners
    connecting = threading.Event()  # never set: a wait that polls nothing
    for _ in range(50):  # librdkafka tries to connect in the background; nothing is sent
        PUMP.pump()
        if seen:
            break
        connecting.wait(0.1)
    assert any("Connection refused" in line for line in seen), seen
