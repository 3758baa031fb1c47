"""Start-up checks of the outside world, before a single record is read.

A setting can parse and still be wrong: a Kafka client property librdkafka rejects, a topic that
does not exist, a topic whose records are too small for our outputs, a MongoDB that does not
answer or refuses the credentials. Each is found here (MongoDB's in ``startup_mongo``), within
``WALKTHROUGHS_STARTUP_TIMEOUT``, and raised as one ``StartupError`` (or ``ConfigError``) line
naming the variable to fix: never a traceback, and never after the first walkthrough. ``doctor``
runs the same checks and prints their messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    ConfigResource,
    ResourceType,
)

from walkthroughs.errors import ConfigError, StartupError
from walkthroughs.runtime.config import Settings, did_you_mean, kafka_variable
from walkthroughs.runtime.kafka_logs import DISCARD, admin_client, with_log_relay
from walkthroughs.runtime.redaction import scrub
from walkthroughs.sinks.kafka import producer_config
from walkthroughs.sources.kafka import consumer_config, list_partitions

LIBRDKAFKA_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's default message.max.bytes
SMALLEST_RECORD_LIMIT = 16 * 1024
"""Output and DLQ topics must accept records of at least this size: a walkthrough of ids at the
longest allowed (``codec.MAX_ID_BYTES``) is ~7.5 KiB, a dead letter's headers ~6 KiB."""
_BATCH_OVERHEAD = 1024  # record batch framing, with room to spare
_PROPERTY = re.compile(r'property:? "([^"]+)"')
_PROBE_LOG_LEVEL = 4
"""librdkafka's warnings and errors only, for the short-lived clients of these checks: their
teardown logs at info level ("Purging 1 unserved events from background queue"), which is noise
on the one line a failed start-up prints. A ``WALKTHROUGHS_KAFKA_LOG__LEVEL`` still wins."""


def probe_config(kafka: Mapping[str, str]) -> dict[str, Any]:
    """Return the settings of a start-up check's client: the service's, but quiet at teardown."""
    return with_log_relay({"log_level": _PROBE_LOG_LEVEL, **kafka})


@dataclass(frozen=True)
class KafkaFacts:
    """What start-up learnt of the cluster: input partitions, the record limits of outputs."""

    partitions: Mapping[str, int]
    record_limits: Mapping[str, int]  # output and DLQ topic -> the largest record to produce


def topic_roles(settings: Settings) -> dict[str, str]:
    """Name each topic of the service with its role and the variable that sets it."""
    roles = dict.fromkeys(settings.messages_topics, "input topic (WALKTHROUGHS_MESSAGES_TOPICS)")
    roles |= dict.fromkeys(settings.walkins_topics, "input topic (WALKTHROUGHS_WALKINS_TOPICS)")
    roles[settings.output_topic] = "output topic (WALKTHROUGHS_OUTPUT_TOPIC)"
    roles[settings.dlq_topic] = "dead-letter topic (WALKTHROUGHS_DLQ_TOPIC)"
    roles[settings.erasures_topic] = "erasures topic (WALKTHROUGHS_ERASURES_TOPIC)"
    return roles


def check_kafka(settings: Settings) -> KafkaFacts:
    """Check the client settings, the cluster, every topic and the outputs' record limits.

    Raises:
        ConfigError: librdkafka rejects a ``WALKTHROUGHS_KAFKA_*`` setting.
        StartupError: the cluster is unreachable, a topic is missing, or an output topic takes
            records too small for what the service writes.
    """
    kafka = settings.kafka_config()
    check_kafka_clients(kafka)
    timeout_s = settings.startup_timeout.total_seconds()
    roles = topic_roles(settings)
    partitions = list_partitions(probe_config(kafka), list(roles), timeout_s, roles=roles)
    outputs = (settings.output_topic, settings.dlq_topic)
    limits = {
        topic: record_limit(kafka, topic_max)
        for topic, topic_max in topic_max_bytes(kafka, outputs, timeout_s).items()
    }
    for topic, limit in limits.items():
        if limit < SMALLEST_RECORD_LIMIT:
            msg = (
                f"{roles[topic]} {topic!r} takes records of at most {limit} bytes (its "
                "max.message.bytes, or WALKTHROUGHS_KAFKA_MESSAGE_MAX_BYTES): the service needs "
                f"at least {SMALLEST_RECORD_LIMIT}"
            )
            raise StartupError(msg)
    return KafkaFacts(partitions, limits)


def check_kafka_clients(kafka: Mapping[str, str]) -> None:
    """Build the service's three kinds of Kafka client: librdkafka checks every property then.

    They connect too, as every client does once built: what they log of it is dropped (their
    job is the properties; ``list_partitions`` reports the cluster).
    """
    makers: list[tuple[Callable[[dict[str, Any]], Any], dict[str, Any]]] = [
        (Producer, producer_config(probe_config(kafka), delivery_timeout_s=30)),
        (Consumer, consumer_config(probe_config(kafka))),
        (admin_client, probe_config(kafka)),
    ]
    for make, config in makers:
        try:
            client = make({**config, "logger": DISCARD})
        except KafkaException as exc:
            raise ConfigError(_client_setting_error(kafka, exc)) from exc
        if isinstance(client, Consumer):
            client.close()


def _client_setting_error(kafka: Mapping[str, str], exc: KafkaException) -> str:
    error = exc.args[0]
    text = scrub(error.str() if hasattr(error, "str") else str(error)).strip()
    found = _PROPERTY.search(text)
    prop = found.group(1) if found else None
    if prop == "bootstrap.servers":
        return f"WALKTHROUGHS_KAFKA_BOOTSTRAP is rejected by the Kafka client: {text}"
    if prop is not None and prop in kafka:
        variable = kafka_variable(prop)
        hint = did_you_mean(variable) if text.startswith("No such configuration property") else ""
        return f"{variable} is rejected by the Kafka client: {text}{hint}"
    given = sorted(kafka_variable(p) for p in kafka if p != "bootstrap.servers")
    return (
        f"a WALKTHROUGHS_KAFKA_* setting is rejected by the Kafka client: {text}"
        f" (set: {', '.join(given) or 'none'})"
    )


def topic_max_bytes(
    kafka: Mapping[str, str], topics: tuple[str, ...], timeout_s: float
) -> dict[str, int]:
    """Return each topic's ``max.message.bytes`` (the broker's limit on a record batch)."""
    admin = admin_client(probe_config(kafka))
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    found: dict[str, int] = {}
    try:
        for resource, future in admin.describe_configs(
            resources, request_timeout=timeout_s
        ).items():
            entries = future.result(timeout=timeout_s)
            found[resource.name] = int(entries["max.message.bytes"].value)
    except KafkaException as exc:
        msg = f"cannot read the configuration of topics {', '.join(topics)}: {scrub(str(exc))}"
        raise StartupError(msg) from exc
    return found


def record_limit(kafka: Mapping[str, str], topic_max_message_bytes: int) -> int:
    """Return the largest record (key, value and headers) our producers may send to a topic.

    The producer refuses a record above its ``message.max.bytes``; the broker refuses a batch
    above the topic's ``max.message.bytes`` after compression, and lz4 can grow incompressible
    bytes by 1/255 plus framing. Our producers batch at most this many bytes too.
    """
    producer_max = int(kafka.get("message.max.bytes", LIBRDKAFKA_MAX_MESSAGE_BYTES))
    broker_max = (topic_max_message_bytes - _BATCH_OVERHEAD) * 255 // 256
    return min(producer_max, broker_max)
