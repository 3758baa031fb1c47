"""Schema Registry frames through the real dataflow on the real broker.

Inputs: records framed by confluent-kafka's serializer, mixed with bare ones on every input
topic, give the walkthroughs the rule gives for the bare records, and every bad record is a
dead letter that carries what was read. Output: framed when asked, read back by confluent-kafka's
deserializer; a registry that cannot be reached stops start-up in one line."""

from __future__ import annotations

import random

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf.message import Message

from tests.integration.dataflow_harness import START_NS, WINDOW_NS, Deployment
from tests.reference import expected_walkthroughs
from walkthroughs import traffic
from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.codec import encode_walkthrough
from walkthroughs.framing import frame
from walkthroughs.topics import read_topic

Keyed = tuple[bytes, bytes | None]


def framed_half(
    records: list[Keyed], message_type: type[Message], topic: str, seed: int
) -> list[Keyed]:
    """About half the records framed by confluent-kafka's serializer (``mock://`` registry).

    A bad record cannot go through the serializer (it is not a valid message): each gets a
    frame of ours around it instead, as a producer with a bug would send it (bare bad records
    are the end-to-end test's).
    """
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    serialize = ProtobufSerializer(message_type, registry, {"use.deprecated.format": False})
    ctx = SerializationContext(topic, MessageField.VALUE)
    rng = random.Random(seed)
    out: list[Keyed] = []
    for key, value in records:
        if key == b"bad" and value is not None:
            out.append((key, frame(value, 99)))
        elif value is None or rng.random() < 0.5:
            out.append((key, value))
        else:
            framed = serialize(message_type.FromString(value), ctx)
            assert framed is not None
            out.append((key, framed))
    return out


def test_framed_and_bare_records_give_the_bare_result(deployment: Deployment) -> None:
    sample = traffic.generate(seed=23, businesses=5, customers=300, start_ns=START_NS)
    produced: dict[tuple[str, int, int], bytes | None] = {}
    framed = 0
    for live, backfill, records, message_type in (
        ("m", "mb", sample.messages, pb.ZenreachMessage),
        ("w", "wb", sample.walkins, pb.WalkIn),
    ):
        cut = len(records) // 4
        for suffix, part in ((live, records[cut:]), (backfill, records[:cut])):
            mixed = framed_half(part, message_type, deployment.topic(suffix), seed=len(part))
            framed += sum(1 for _, v in mixed if v and v[0] == 0)
            for at, (_, value) in zip(deployment.produce(suffix, mixed), mixed, strict=True):
                produced[at] = value
    assert framed > len(produced) // 3, "a fair share of the records must be framed"

    proc = deployment.run("-w", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert len(expected) > 50
    assert deployment.output() == expected

    dead = deployment.dead_letters()
    assert len(dead) == sample.bad
    for letter in dead:
        at = (
            letter.headers["source_topic"].decode(),
            int(letter.headers["source_partition"]),
            int(letter.headers["source_offset"]),
        )
        assert letter.key == b"bad"
        assert letter.value == produced[at]  # as read, frame included: a redrive resends it
    assert any(letter.value and letter.value[0] == 0 for letter in dead), "a framed bad record"


def test_confluent_output_reads_back_as_the_bare_output(deployment: Deployment) -> None:
    """WALKTHROUGHS_OUTPUT_FORMAT=confluent, the schema registered at start-up (confluent-kafka's
    in-process ``mock://`` registry): every output record is framed, and confluent-kafka's
    deserializer reads back exactly the walkthroughs of the rule."""
    sample = traffic.generate(seed=29, businesses=4, customers=200, start_ns=START_NS)
    deployment.feed(sample)
    proc = deployment.run(
        "-w",
        "1",
        WALKTHROUGHS_OUTPUT_FORMAT="confluent",
        WALKTHROUGHS_SCHEMA_REGISTRY_URL="mock://walkthroughs-test",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert len(expected) > 20
    records = read_topic(deployment.kafka, deployment.topic("out"))
    deserialize = ProtobufDeserializer(pb.Walkthrough, {"use.deprecated.format": False})
    ctx = SerializationContext(deployment.topic("out"), MessageField.VALUE)
    theirs: dict[str, pb.Walkthrough] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        assert record.value[:1] == b"\x00"  # framed, every one
        read = deserialize(record.value, ctx)
        assert isinstance(read, pb.Walkthrough)
        theirs[read.walkin_id] = read
    assert {k: pb.Walkthrough.FromString(encode_walkthrough(w)) for k, w in expected.items()} == (
        theirs
    )
    assert deployment.output() == expected  # our own reader unframes as well


def test_an_unreachable_registry_stops_the_dataflow_in_one_line(deployment: Deployment) -> None:
    proc = deployment.run(
        "-w",
        "1",
        timeout_s=120,
        WALKTHROUGHS_OUTPUT_FORMAT="confluent",
        WALKTHROUGHS_SCHEMA_REGISTRY_URL="http://svc:reg1stry-pw@127.0.0.1:1",
        WALKTHROUGHS_STARTUP_TIMEOUT="2s",
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("walkthroughs: cannot start: cannot register the walkthrough")
    assert "(WALKTHROUGHS_SCHEMA_REGISTRY_URL)" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert "reg1stry-pw" not in proc.stdout + proc.stderr
