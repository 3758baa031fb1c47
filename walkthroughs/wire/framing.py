"""Confluent Schema Registry framing of protobuf records: read it, or write it (no I/O).

Producers that go through Confluent's serializers (``KafkaProtobufSerializer`` in Java,
confluent-kafka's ``ProtobufSerializer``) put a frame before the protobuf bytes:

* the magic byte ``0``;
* the schema id, 4 bytes, big-endian;
* the message indexes, which say which message of the schema's file the record is: a count,
  then that many indexes, each a zigzag varint; the first message of the file, ``[0]``, is
  written as a single ``0`` byte.

A record is told apart from bare protobuf by its first byte alone: a protobuf message begins
with a field tag, and the tag of field number 0 (``0x00``-``0x07``) does not exist, so a bare
record never begins with ``0`` and a framed one always does. Every input topic therefore takes
both forms, record by record, with no setting.

The schema id and the indexes point into the writer's schema, which the service does not fetch:
the topic says which message a record is (as confluent-kafka's ``ProtobufDeserializer`` does
when handed a message class, it parses the indexes and does not match them). A frame that ends
early, or whose indexes run past the record's end, makes the record bad; the reason says where.
"""

from __future__ import annotations

from walkthroughs.errors import DecodeError
from walkthroughs.wire.schema import Reason

MAGIC = 0
"""The first byte of a framed record (format version 0: a 4-byte schema id)."""
_HEADER = 5  # the magic byte and the schema id
MAX_INDEXES = 100_000
"""More message indexes than this make a frame bad: confluent-kafka refuses the same count."""
_MAX_VARINT_BYTES = 10  # a 64-bit varint: a longer run of continuation bits is corrupt


def unframe(value: bytes) -> bytes:
    """Return the protobuf bytes inside a framed record.

    Raises:
        DecodeError: the frame ends early or its indexes are corrupt (``undecodable``).
    """
    if len(value) < _HEADER:
        got = len(value) - 1
        msg = f"schema registry frame: schema id cut short ({got} of 4 bytes)"
        raise DecodeError(Reason.UNDECODABLE, msg)
    count, at = _zigzag(value, _HEADER, "message index count")
    if count == 0:  # the first message of the file, [0], written as the count alone
        return value[at:]
    if not 0 < count <= MAX_INDEXES:
        msg = f"schema registry frame: {count} message indexes, at most {MAX_INDEXES}"
        raise DecodeError(Reason.UNDECODABLE, msg)
    for i in range(count):
        _, at = _zigzag(value, at, f"message index {i + 1} of {count}")
    return value[at:]


def schema_id(value: bytes) -> int:
    """The schema id of a framed record (its bytes 1-4; 0-filled if the record is shorter)."""
    return int.from_bytes(value[1:_HEADER].ljust(4, b"\0"), "big")


def frame(payload: bytes, schema: int, indexes: tuple[int, ...] = (0,)) -> bytes:
    """Frame protobuf bytes as Confluent's serializers do (``schema``: the registry's id)."""
    if not 0 <= schema < 1 << 32:
        msg = f"a schema id is 4 bytes unsigned, not {schema}"
        raise ValueError(msg)
    head = bytearray((MAGIC,))
    head += schema.to_bytes(4, "big")
    if indexes == (0,):
        head.append(0)
    else:
        for n in (len(indexes), *indexes):
            _put_zigzag(head, n)
    return bytes(head) + payload


def _zigzag(value: bytes, at: int, what: str) -> tuple[int, int]:
    """Read one zigzag varint at ``at``; return it and where the next field starts."""
    raw = shift = 0
    for i in range(at, min(len(value), at + _MAX_VARINT_BYTES)):
        byte = value[i]
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), i + 1
        shift += 7
    if len(value) - at >= _MAX_VARINT_BYTES:
        msg = f"schema registry frame: {what} is not a varint (over {_MAX_VARINT_BYTES} bytes)"
    else:
        msg = f"schema registry frame: {what} runs past the end of the record"
    raise DecodeError(Reason.UNDECODABLE, msg)


def _put_zigzag(out: bytearray, n: int) -> None:
    raw = (n << 1) ^ (n >> 63)
    while raw > 0x7F:
        out.append(raw & 0x7F | 0x80)
        raw >>= 7
    out.append(raw)
