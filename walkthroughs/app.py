"""Build the production dataflow from settings: real Kafka and MongoDB connectors.

Called once by ``dataflow.py`` (the composition root). Start-up checks happen here, before any
record is read: settings, the reachability of Kafka, and the existence of every topic; the
MongoDB sink pings the server when its partitions are built.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping

from bytewax.dataflow import Dataflow

from walkthroughs import logs
from walkthroughs.clock import system_now_ns
from walkthroughs.config import Settings
from walkthroughs.flow import Sinks, build_flow
from walkthroughs.sinks.kafka import KafkaOutput, dead_letter_record, walkthrough_record
from walkthroughs.sinks.mongo import MongoOutput
from walkthroughs.sources.kafka import KafkaInput, list_partitions

log = logging.getLogger("walkthroughs")
GC_THRESHOLD = 50_000


def build_from_env(environ: Mapping[str, str]) -> Dataflow:
    """Read the settings, check the outside world, and assemble the dataflow."""
    settings = Settings.from_env(environ)
    logs.configure(settings.log_level)
    # State is millions of small long-lived objects and every record allocates a few more: with
    # CPython's default thresholds (700, 10, 10) the cyclic collector keeps re-walking the young
    # generations. Fewer, larger young collections; the state itself holds no reference cycles.
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    log.info("starting", extra={"fields": {"settings": settings.describe()}})
    kafka = settings.kafka_config()
    timeout_s = settings.startup_timeout.total_seconds()
    inputs = [*settings.messages_topics, *settings.walkins_topics]
    list_partitions(kafka, [*inputs, settings.output_topic, settings.dlq_topic], timeout_s)
    mongo = (
        MongoOutput(
            settings.mongo_uri,
            settings.mongo_db,
            retry_limit_s=settings.mongo_retry_limit.total_seconds(),
        )
        if settings.mongo_enabled
        else None
    )
    sinks = Sinks(
        walkthroughs=KafkaOutput(kafka, settings.output_topic, walkthrough_record),
        dead_letters=KafkaOutput(kafka, settings.dlq_topic, dead_letter_record),
        mongo=mongo,
    )
    source = KafkaInput(
        kafka, inputs, stop_at_end=settings.stop_at_end, startup_timeout_s=timeout_s
    )
    return build_flow(
        source=source,
        sinks=sinks,
        message_topics=frozenset(settings.messages_topics),
        rules=settings.rules(),
        flush_interval_ns=int(settings.flush_interval.total_seconds() * 1e9),
        now_getter=system_now_ns,
    )
