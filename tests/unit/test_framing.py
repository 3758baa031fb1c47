"""Schema Registry frames: what confluent-kafka's serializer writes decodes as the bare record;
every broken frame is a dead letter with its own reason; no input makes decode raise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.wire import codec
from walkthroughs.wire.framing import MAX_INDEXES, frame, unframe
from walkthroughs.wire.schema import (
    Channel,
    DeadLetter,
    MessageEvent,
    Reason,
    WalkInEvent,
    new_origin,
)

T = 1_900_000_000_000_000_000
MESSAGE = MessageEvent("m-1", "biz", "cust", T, Channel.SMS, "camp")
WALKIN = WalkInEvent("w-1", "biz", "cust", "loc", T + 60 * 10**9, codec.local_date(T, "Asia/Tokyo"))
ID = (7).to_bytes(4, "big")  # a schema id
MESSAGES = frozenset({"messages"})


def serializer(message_type: type[Message], topic: str) -> Callable[[Message], bytes]:
    """confluent-kafka's own serializer, on its in-memory registry (``mock://``: no server)."""
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    serialize = ProtobufSerializer(message_type, registry, {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)

    def framed(message: Message) -> bytes:
        value = serialize(message, ctx)
        assert isinstance(value, bytes)
        return value

    return framed


def decoded(value: bytes | None, topic: str = "messages") -> object:
    origin = new_origin((topic, 0, 42, b"key", value, None))
    result = codec.decode_record(origin, MESSAGES, codec.NO_ALIASES)
    return result if result.__class__ is DeadLetter else result[0]


def test_records_framed_by_confluent_kafka_decode_as_the_bare_records() -> None:
    bare_message = codec.encode_message(MESSAGE)
    bare_walkin = codec.encode_walkin(WALKIN, timezone="Asia/Tokyo")
    framed_message = serializer(pb.ZenreachMessage, "messages")(
        pb.ZenreachMessage.FromString(bare_message)
    )
    framed_walkin = serializer(pb.WalkIn, "walkins")(pb.WalkIn.FromString(bare_walkin))

    assert framed_message[:1] == b"\x00"
    assert framed_message[5:6] == b"\x00"  # the first message of the file: index [0], one byte
    assert framed_walkin[5:7] == b"\x02\x02"  # the second: [1], a count and an index
    assert decoded(framed_message) == decoded(bare_message) == MESSAGE
    assert decoded(framed_walkin, "walkins") == decoded(bare_walkin, "walkins") == WALKIN


@pytest.mark.parametrize(
    ("message_type", "indexes"),
    [(pb.ZenreachMessage, (0,)), (pb.WalkIn, (1,)), (pb.Walkthrough, (2,))],
)
def test_frame_writes_what_confluent_kafka_writes(
    message_type: type[Message], indexes: tuple[int]
) -> None:
    payload = message_type().SerializeToString()
    theirs = serializer(message_type, "topic")(message_type())
    schema = int.from_bytes(theirs[1:5], "big")
    assert frame(payload, schema, indexes) == theirs
    assert unframe(theirs) == payload


def test_nested_message_indexes_are_parsed_not_matched() -> None:
    payload = codec.encode_message(MESSAGE)
    assert unframe(frame(payload, 3, (4, 0, 2))) == payload
    assert decoded(frame(payload, 3, (4, 0, 2))) == MESSAGE  # whatever the writer's schema said


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"\x00", "schema registry frame: schema id cut short (0 of 4 bytes)"),
        (b"\x00\x00\x00", "schema registry frame: schema id cut short (2 of 4 bytes)"),
        (
            b"\x00" + ID,
            "schema registry frame: message index count runs past the end of the record",
        ),
        (
            b"\x00" + ID + b"\x04\x02",  # two indexes announced, one present
            "schema registry frame: message index 2 of 2 runs past the end of the record",
        ),
        (
            b"\x00" + ID + b"\x04\x02\x80",  # the second index's varint never ends
            "schema registry frame: message index 2 of 2 runs past the end of the record",
        ),
        (
            b"\x00" + ID + b"\x01",  # a count of -1
            "schema registry frame: -1 message indexes, at most 100000",
        ),
        (
            frame(b"", 7, tuple(range(MAX_INDEXES + 1)))[:12],
            "schema registry frame: 100001 message indexes, at most 100000",
        ),
        (
            b"\x00" + ID + b"\xff" * 11,
            "schema registry frame: message index count is not a varint (over 10 bytes)",
        ),
    ],
)
def test_a_broken_frame_is_a_dead_letter_that_says_where(value: bytes, detail: str) -> None:
    letter = decoded(value)
    assert isinstance(letter, DeadLetter)
    assert letter.reason is Reason.UNDECODABLE
    assert letter.error == f"undecodable {detail}"
    assert letter.origin.value == value  # the record as read, frame included: a redrive resends it


def test_a_frame_around_garbage_is_undecodable_as_the_topics_type() -> None:
    letter = decoded(frame(b"\xff\xff\xff", 7))
    assert isinstance(letter, DeadLetter)
    assert letter.reason is Reason.UNDECODABLE
    assert letter.error.startswith("undecodable ZenreachMessage: ")


def test_a_frame_around_nothing_is_a_record_with_no_fields() -> None:
    letter = decoded(frame(b"", 7))
    assert isinstance(letter, DeadLetter)
    assert letter.error == "missing field message_id"


@given(st.binary(max_size=64), st.sampled_from(["messages", "walkins"]))
def test_no_framed_value_makes_decode_raise(tail: bytes, topic: str) -> None:
    for value in (b"\x00" + tail, b"\x00" + ID + tail, frame(tail, 1), frame(tail, 9, (3, 1))):
        result = decoded(value, topic)
        assert isinstance(result, DeadLetter | MessageEvent | WalkInEvent)
