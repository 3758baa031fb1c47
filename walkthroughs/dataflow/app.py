"""Build the production dataflow from settings: real Kafka and MongoDB connectors.

Called once by ``dataflow.py`` (the composition root). Start-up checks happen here, before any
record is read (``startup``): settings, the Kafka client settings, the cluster, every topic and
the record limits of the outputs, and MongoDB (ping, credentials, indexes).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.outputs import Sink

from walkthroughs.dataflow.flow import Sinks, build_flow
from walkthroughs.runtime import health, logs, redaction
from walkthroughs.runtime.clock import system_now_ns
from walkthroughs.runtime.config import Settings, environment_secrets_of
from walkthroughs.runtime.output_schema import output_schema_id
from walkthroughs.runtime.redaction import Redactor
from walkthroughs.runtime.startup import check_kafka
from walkthroughs.sinks.kafka import (
    KafkaOutput,
    TombstoneWriter,
    dead_letter_record,
    framed_walkthrough_record,
    walkthrough_record,
)
from walkthroughs.sources.kafka import KafkaInput

log = logging.getLogger("walkthroughs")
# Cyclic collector thresholds (generation 0, 1, 2); see ``tune_gc``.
GC_THRESHOLDS = (1_000_000, 10, 10)


def tune_gc() -> None:
    """Collect young objects after a million allocations rather than CPython's 700.

    State is millions of small long-lived objects that hold no reference cycles, and a young
    collection walks every object that survived since the last one: with CPython's default
    thresholds (700, 10, 10) the collector re-walks each new piece of state several times, one
    cache miss after another (the time spent in the collector at each setting: bench/README.md).
    Garbage without cycles is freed by reference counting either way; the rare cycles (an
    exception and its traceback) wait a little longer. Generations 1 and 2 keep CPython's
    ratios, so full collections still come, every ~100M allocations.
    """
    gc.set_threshold(*GC_THRESHOLDS)


def build_from_env(environ: Mapping[str, str]) -> Dataflow:
    """Read the settings, check the outside world, and assemble the dataflow.

    Secrets are known to the process's redactor before anything can be logged or raised.
    """
    redaction.install(Redactor(environment_secrets_of(environ)))
    settings = Settings.from_env(environ)
    logs.configure(settings.log_level)
    tune_gc()
    log.info("starting", extra={"fields": {"settings": settings.describe()}})
    kafka = settings.kafka_config()
    facts = check_kafka(settings)
    mongo = _mongo_output(settings, kafka) if settings.mongo_enabled else None
    schema_id = output_schema_id(settings)
    sinks = Sinks(
        walkthroughs=KafkaOutput(
            kafka,
            settings.output_topic,
            framed_walkthrough_record(schema_id) if schema_id else walkthrough_record,
            max_record_bytes=facts.record_limits[settings.output_topic],
        ),
        dead_letters=KafkaOutput(
            kafka,
            settings.dlq_topic,
            dead_letter_record,
            max_record_bytes=facts.record_limits[settings.dlq_topic],
            cut_to_fit=True,
        ),
        mongo=mongo,
    )
    if settings.health_port:
        health.serve(settings.health_port, settings.stall_limit.total_seconds())
    inputs = [*settings.messages_topics, *settings.walkins_topics, settings.erasures_topic]
    source = KafkaInput(
        kafka,
        inputs,
        stop_at_end=settings.stop_at_end,
        startup_timeout_s=settings.startup_timeout.total_seconds(),
    )
    return build_flow(
        source=source,
        sinks=sinks,
        message_topics=frozenset(settings.messages_topics),
        rules=settings.rules(),
        flush_interval_ns=int(settings.flush_interval.total_seconds() * 1e9),
        now_getter=system_now_ns,
        erasure_topics=frozenset({settings.erasures_topic}),
        timezone_aliases=settings.timezone_aliases,
    )


def _mongo_output(settings: Settings, kafka: Mapping[str, str]) -> Sink[Any]:
    """Check MongoDB and make its sink.

    Imported here, not at the top: MongoDB's driver costs ~60 ms of CPU at every process start,
    which a deployment with MongoDB off (``WALKTHROUGHS_MONGO_ENABLED=0``) need not pay.
    """
    from walkthroughs.runtime.startup_mongo import check_mongo  # noqa: PLC0415
    from walkthroughs.sinks.mongo import MongoOutput  # noqa: PLC0415
    from walkthroughs.sinks.mongo_erasure import Eraser  # noqa: PLC0415

    check_mongo(settings)
    return MongoOutput(
        settings.mongo_uri,
        settings.mongo_db,
        retry_limit_s=settings.mongo_retry_limit.total_seconds(),
        request_timeout_s=settings.mongo_timeout.total_seconds(),
        erase=Eraser(TombstoneWriter(kafka, settings.output_topic, 30.0), system_now_ns),
    )
