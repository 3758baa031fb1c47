"""Dead letters read back: their reasons, a summary per reason, and what a redrive sends (no I/O).

A dead letter is the original key and bytes with headers ``error``, ``source_topic``,
``source_partition`` and ``source_offset`` (the contract). ``dlq redrive`` re-produces it to its
source topic with two more headers, which the service copies onto the dead letter if the
record fails again:

* ``redrive_count``: how many times the record was redriven (decimal);
* ``redrive_origin``: ``<topic>#<partition>@<offset>`` of the record as first read, the same
  for every attempt: the *lineage* of the record.

A redrive sends the latest dead letter of each lineage once (replays of an epoch may have
dead-lettered a record twice), and none whose ``redrive_count`` reached the limit: that one is
reported instead (the loop guard). A record redriven after it was fixed is a duplicate the
second time, which the service ignores, so a redrive run twice changes no result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import text_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.schema import Reason

REDRIVE_COUNT = "redrive_count"
REDRIVE_ORIGIN = "redrive_origin"
REDRIVEN_AT = "redriven_at"
CARRIED_HEADERS = (REDRIVE_COUNT, REDRIVE_ORIGIN)
"""Headers of an input record the service copies onto its dead letter."""
_CARRIED_BYTES = 256  # a hostile producer's header is cut: these are short by construction
OTHER = "other"  # the reason of an error header that names none of ``Reason``
_REASONS = sorted((r.value for r in Reason), key=len, reverse=True)  # longest match first
_SAMPLE_CHARS = 300


@dataclass(frozen=True)
class Letter:
    """One dead letter as read from the DLQ topic."""

    partition: int  # where it is in the DLQ topic
    offset: int
    timestamp_ms: int  # when it was dead-lettered (Kafka record time)
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes]

    @property
    def error(self) -> str:
        """The ``error`` header."""
        return self.headers.get("error", b"").decode(errors="replace")

    @property
    def reason(self) -> str:
        """The ``Reason`` the error starts with (``other`` if none)."""
        return reason_of(self.error)

    @property
    def source(self) -> tuple[str, int, int]:
        """(topic, partition, offset) of the record that failed."""
        h = self.headers
        return (
            h.get("source_topic", b"").decode(errors="replace"),
            _int(h.get("source_partition")),
            _int(h.get("source_offset")),
        )

    @property
    def redrive_count(self) -> int:
        """How many times the record had been redriven when it failed (0: never)."""
        return _int(self.headers.get(REDRIVE_COUNT))

    @property
    def lineage(self) -> str:
        """The position of the record as first read: the same for every redriven copy."""
        origin = self.headers.get(REDRIVE_ORIGIN)
        if origin:
            return origin.decode(errors="replace")
        topic, partition, offset = self.source
        return f"{topic}#{partition}@{offset}"

    @property
    def truncated(self) -> bool:
        """Whether the DLQ holds only a prefix of the bytes (too large to copy as they were)."""
        return "value_truncated" in self.headers or "key_truncated" in self.headers


def reason_of(error: str) -> str:
    """Return the reason an ``error`` header starts with, as ``--reason`` takes it."""
    for reason in _REASONS:
        if error == reason or error.startswith((f"{reason} ", f"{reason}:")):
            return reason
    return OTHER


def known_reasons() -> list[str]:
    """Every value ``--reason`` accepts."""
    return [*(r.value for r in Reason), OTHER]


def carried_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> list[tuple[str, bytes]]:
    """The redrive headers of an input record, for its dead letter (cut to a safe size)."""
    if not headers:
        return []
    return [
        (name, (value or b"")[:_CARRIED_BYTES])
        for name, value in headers
        if name in CARRIED_HEADERS
    ]


@dataclass(frozen=True)
class ReasonRow:
    """One line of ``dlq inspect``: a reason and where its dead letters are."""

    reason: str
    count: int
    first_offset: int
    last_offset: int
    first_at: datetime
    last_at: datetime
    redriven: int  # of them, dead letters of records that had been redriven


def summarize(letters: Iterable[Letter]) -> list[ReasonRow]:
    """Group dead letters by reason, most frequent first."""
    groups: dict[str, list[Letter]] = {}
    for letter in letters:
        groups.setdefault(letter.reason, []).append(letter)
    rows = [
        ReasonRow(
            reason,
            len(group),
            min(g.offset for g in group),
            max(g.offset for g in group),
            _at(min(g.timestamp_ms for g in group)),
            _at(max(g.timestamp_ms for g in group)),
            sum(1 for g in group if g.redrive_count),
        )
        for reason, group in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r.count, r.reason))


@dataclass(frozen=True)
class RedrivePlan:
    """What a redrive sends, and what the loop guard holds back."""

    send: list[Letter]  # the latest dead letter of each lineage, below the limit
    stopped: list[Letter]  # at the limit: reported, not sent
    truncated: list[Letter]  # only a prefix of the bytes is left: cannot be sent as it was


def plan_redrive(letters: Iterable[Letter], reason: str, max_redrives: int) -> RedrivePlan:
    """Choose the dead letters of ``reason`` to redrive: one per lineage, the latest attempt."""
    latest: dict[str, Letter] = {}
    for letter in letters:
        held = latest.get(letter.lineage)
        if held is None or (letter.redrive_count, letter.partition, letter.offset) > (
            held.redrive_count,
            held.partition,
            held.offset,
        ):
            latest[letter.lineage] = letter
    chosen = sorted(
        (g for g in latest.values() if g.reason == reason), key=lambda g: (g.partition, g.offset)
    )
    return RedrivePlan(
        send=[g for g in chosen if g.redrive_count < max_redrives and not g.truncated],
        stopped=[g for g in chosen if g.redrive_count >= max_redrives],
        truncated=[g for g in chosen if g.redrive_count < max_redrives and g.truncated],
    )


def redrive_headers(letter: Letter, now: datetime) -> list[tuple[str, bytes]]:
    """The headers of a redriven copy: its attempt number, its lineage, when it was sent."""
    return [
        (REDRIVE_COUNT, str(letter.redrive_count + 1).encode()),
        (REDRIVE_ORIGIN, letter.lineage.encode()),
        (REDRIVEN_AT, now.astimezone(UTC).isoformat().encode()),
    ]


def sample(letter: Letter, kinds: Mapping[str, str]) -> str:
    """The record's bytes as far as they parse, on one line (``kinds``: topic -> kind).

    Parsed without validation: a record that is bad for a reason other than its encoding (a
    missing field, an unknown zone) still shows what it holds.
    """
    value = letter.value
    if value is None:
        return "(no value)"
    kind = kinds.get(letter.source[0])
    prefix = "(a prefix) " if letter.truncated else ""
    if kind == "erasures":
        return prefix + _cut(value.decode(errors="replace"))
    parser: type[Message] | None = {"messages": pb.ZenreachMessage, "walkins": pb.WalkIn}.get(
        kind or ""
    )
    if parser is None:
        return f"{prefix}{len(value)} bytes from a topic the service does not read"
    try:
        parsed = parser.FromString(value)
    except ProtobufDecodeError:
        return f"{prefix}{len(value)} bytes that do not parse as {parser.DESCRIPTOR.name}"
    return prefix + _cut(text_format.MessageToString(parsed, as_one_line=True) or "(empty)")


def _cut(text: str) -> str:
    return text if len(text) <= _SAMPLE_CHARS else text[: _SAMPLE_CHARS - 3] + "..."


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or b"0")
    except ValueError:
        return 0


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
