"""Schema Registry frames through the real dataflow on the real broker.

Inputs: records framed by confluent-kafka's serializer, mixed with bare ones on every input
topic, give the walkthroughs the rule gives for the bare records, and every bad record is a
dead letter that carries what was read. Output: framed when asked, read back by confluent-kafka's
deserializer; a registry that cannot be reached stops start-up in one line."""

from __future__ import annotations

import random
import subprocess
import sys

from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf.message import Message

from tests.integration.dataflow_harness import REPO, START_NS, WINDOW_NS, Deployment
from tests.reference import expected_walkthroughs
from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import ensure_topics, read_topic
from walkthroughs.wire.codec import encode_walkthrough
from walkthroughs.wire.framing import frame

Keyed = tuple[bytes, bytes | None]
PROTO = REPO / "proto" / "walkthroughs" / "v1" / "events.proto"
DECODE = "--decode=walkthroughs.v1.Walkthrough"


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
    """The same inputs run twice: bare output, then WALKTHROUGHS_OUTPUT_FORMAT=confluent to a
    second topic, the schema registered at start-up (confluent-kafka's in-process ``mock://``
    registry). Every framed record, read back by confluent-kafka's deserializer, equals the bare
    record at the same place in its key's sequence; and the latest per key is the rule's."""
    sample = traffic.generate(seed=29, businesses=4, customers=200, start_ns=START_NS)
    deployment.feed(sample)
    bare_run = deployment.run("-w", "1")
    assert bare_run.returncode == 0, bare_run.stdout + bare_run.stderr
    framed_topic = deployment.topic("out-framed")
    ensure_topics(deployment.kafka, {framed_topic: 3})
    try:
        framed_run = deployment.run(
            "-w",
            "1",
            WALKTHROUGHS_OUTPUT_TOPIC=framed_topic,
            WALKTHROUGHS_OUTPUT_FORMAT="confluent",
            WALKTHROUGHS_SCHEMA_REGISTRY_URL="mock://walkthroughs-test",
        )
        assert framed_run.returncode == 0, framed_run.stdout + framed_run.stderr
        framed = read_topic(deployment.kafka, framed_topic)
    finally:
        AdminClient(dict(deployment.kafka)).delete_topics([framed_topic])

    deserialize = ProtobufDeserializer(pb.Walkthrough, {"use.deprecated.format": False})
    ctx = SerializationContext(framed_topic, MessageField.VALUE)
    theirs: dict[bytes | None, list[pb.Walkthrough]] = {}
    for record in sorted(framed, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        assert record.value[:1] == b"\x00"  # framed, every one
        read = deserialize(record.value, ctx)
        assert isinstance(read, pb.Walkthrough)
        theirs.setdefault(record.key, []).append(read)
    bare = read_topic(deployment.kafka, deployment.topic("out"))
    ours: dict[bytes | None, list[pb.Walkthrough]] = {}
    for record in sorted(bare, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        assert record.value[:1] != b"\x00"
        ours.setdefault(record.key, []).append(pb.Walkthrough.FromString(record.value))
    assert theirs == ours  # record for record, key by key
    # A consumer that knows nothing of frames still reads the default output: protoc --decode.
    first = sorted(bare, key=lambda r: (r.partition, r.offset))[0]
    decoded = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'proto'}", DECODE, str(PROTO)],
        input=first.value,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert f'walkin_id: "{first.key.decode() if first.key else ""}"' in decoded
    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert len(expected) > 20
    assert {k.decode(): v[-1] for k, v in theirs.items() if k} == {
        k: pb.Walkthrough.FromString(encode_walkthrough(w)) for k, w in expected.items()
    }


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
