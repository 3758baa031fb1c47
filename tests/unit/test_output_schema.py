"""The output's frame: its schema id given, or registered at start-up through confluent-kafka's
client; a registry that cannot be reached stops start-up in one line that holds no secret."""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.errors import StartupError
from walkthroughs.runtime.config import Settings
from walkthroughs.runtime.output_schema import output_schema_id
from walkthroughs.sinks.kafka import framed_walkthrough_record, walkthrough_record
from walkthroughs.wire.codec import decode_walkthrough
from walkthroughs.wire.schema import Attributed, Tombstone, Walkthrough

T = 1_900_000_000_000_000_000
WALKTHROUGH = Walkthrough("w-1", "biz", "cust", "loc", T, "m-1", 2, "camp", T - 10**9, "2030-03-17")


def settings(**env: str) -> Settings:
    return Settings.from_env({"WALKTHROUGHS_STARTUP_TIMEOUT": "2s", **env})


def test_bare_output_needs_no_schema_id() -> None:
    assert output_schema_id(settings()) == 0


def test_a_given_schema_id_is_used_as_it_is() -> None:
    given = settings(WALKTHROUGHS_OUTPUT_FORMAT="confluent", WALKTHROUGHS_OUTPUT_SCHEMA_ID="77")
    assert output_schema_id(given) == 77


def test_the_schema_is_registered_under_the_output_topics_subject() -> None:
    registered = settings(
        WALKTHROUGHS_OUTPUT_FORMAT="confluent",
        WALKTHROUGHS_SCHEMA_REGISTRY_URL="mock://output-schema-test",
        WALKTHROUGHS_OUTPUT_TOPIC="walkthroughs-x",
    )
    first = output_schema_id(registered)
    assert first > 0
    assert output_schema_id(registered) == first  # registered once: the same id again


def test_framed_output_reads_back_with_confluent_kafkas_deserializer() -> None:
    attributed = Attributed(WALKTHROUGH, T, False, True)
    key, value, headers = framed_walkthrough_record(5)(attributed)
    bare = walkthrough_record(attributed)
    assert (key, headers) == (bare[0], bare[2])
    assert value is not None
    assert value[:5] == b"\x00\x00\x00\x00\x05"
    deserialize = ProtobufDeserializer(pb.Walkthrough, {"use.deprecated.format": False})
    theirs = deserialize(value, SerializationContext("walkthroughs", MessageField.VALUE))
    assert theirs == pb.Walkthrough.FromString(bare[1] or b"")
    assert decode_walkthrough(value) == decode_walkthrough(bare[1] or b"") == WALKTHROUGH
    assert framed_walkthrough_record(5)(Tombstone("w-1")) == (b"w-1", None, None)


def test_an_unreachable_registry_stops_start_up_in_one_line_without_its_password() -> None:
    unreachable = settings(
        WALKTHROUGHS_OUTPUT_FORMAT="confluent",
        WALKTHROUGHS_SCHEMA_REGISTRY_URL="http://svc:pa55word-x9@127.0.0.1:1",
    )
    with pytest.raises(StartupError) as caught:
        output_schema_id(unreachable)
    message = str(caught.value)
    assert "WALKTHROUGHS_SCHEMA_REGISTRY_URL" in message
    assert "http://svc:***@127.0.0.1:1" in message
    assert "pa55word" not in message
    assert "\n" not in message
