"""Hostile input: records built to break a decoder.

Written by hand at the wire level (not through the generated classes), so that they can be what
no well-behaved producer sends: used by the fuzz tests (in-process and end-to-end) and by the
end-to-end benchmark, whose ~2% bad records are these.
"""

from __future__ import annotations

import random

from google.protobuf.timestamp_pb2 import Timestamp

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb


def varint(n: int) -> bytes:
    """A protobuf base-128 varint."""
    n &= (1 << 64) - 1  # negative numbers travel as 10-byte two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire_type: int, payload: bytes | str | int) -> bytes:
    """One field with any wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).

    The payload is a number for the numeric wire types, bytes or text for wire type 2.
    """
    key = varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + varint(int(payload))
    if wire_type == 2:
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        return key + varint(len(data)) + data
    if wire_type == 1:
        return key + (int(payload) & (2**64 - 1)).to_bytes(8, "little")
    return key + (int(payload) & (2**32 - 1)).to_bytes(4, "little")


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    """The body of a ``google.protobuf.Timestamp``, whatever its values (even invalid ones)."""
    return field(1, 0, seconds) + field(2, 0, nanos)


def hostile_record(  # noqa: PLR0911 (one return per kind)
    rng: random.Random, walkin: bool, *, nul_ids: bool = True
) -> bytes | None:
    """One record of a randomly chosen hostile kind (some turn out valid: the test decides).

    ``nul_ids=False`` leaves out ids holding U+0000: valid, and MongoDB stores them, but the
    local stand-in on PostgreSQL cannot (docs/local-stack.md), which would stop a run there.
    """
    ids = [
        f"id-{rng.randrange(10**6)}",
        "",
        "\x00\x01\x7f" if nul_ids else "\x01\x7f",
        "x" * rng.choice([1, 5000, 200_000]),
        "é😀:\n\t",
        "\u202e" * 3,
    ]
    kind = rng.randrange(9)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    if kind == 1:  # a valid record, truncated
        valid = (
            pb.WalkIn(
                walkin_id="w",
                business_id="b",
                customer_id="c",
                started_at=Timestamp(seconds=1_800_000_000),
            )
            if walkin
            else pb.ZenreachMessage(
                message_id="m",
                business_id="b",
                customer_id="c",
                sent_at=Timestamp(seconds=1_800_000_000),
            )
        ).SerializeToString()
        return valid[: rng.randrange(len(valid))]
    if kind == 2:  # wrong wire types in known field numbers
        return b"".join(
            field(n, rng.choice([0, 1, 5]), rng.randrange(-(2**40), 2**40)) for n in range(1, 8)
        )
    if kind == 3:  # extreme and negative timestamps
        seconds = rng.choice([-(2**62), -1, 0, 946_684_799, 4_133_980_800, 2**62, 1_800_000_000])
        nanos = rng.choice([0, -1, 10**9, 2**31 - 1, 999_999_999])
        return (
            field(1, 2, rng.choice(ids))
            + field(2, 2, "b")
            + field(3, 2, "c")
            + field(5, 2, timestamp(seconds, nanos))
        )
    if kind == 4:  # invalid UTF-8 in a string field
        return field(1, 2, b"\xff\xfe\xfd") + field(2, 2, "b") + field(3, 2, "c")
    if kind == 5:  # odd ids: empty, control characters, huge, bidi overrides
        return (
            field(1, 2, rng.choice(ids))
            + field(2, 2, rng.choice(ids))
            + field(3, 2, rng.choice(ids))
            + field(5, 2, timestamp(1_800_000_000))
        )
    if kind == 6:  # out-of-range enum, or a garbage timezone
        tail = field(7, 2, rng.choice(["Mars/Base", "../../etc/passwd", "UTC\x00", "Z" * 300]))
        if not walkin:
            tail = field(4, 0, rng.choice([5, -1, 2**31 - 1, 2**63]))
        return (
            field(1, 2, "e")
            + field(2, 2, "b")
            + field(3, 2, "c")
            + field(5, 2, timestamp(1_800_000_000))
            + tail
        )
    if kind == 7:  # length prefix larger than the record
        return b"\x0a\xff\xff\xff\x0f" + b"x" * rng.randrange(10)
    return None  # a tombstone
