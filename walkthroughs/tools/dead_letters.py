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

import hashlib
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import NamedTuple

from google.protobuf import text_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.errors import DecodeError
from walkthroughs.wire.dead_letter_headers import REDRIVE_COUNT, REDRIVE_ORIGIN, REDRIVEN_AT
from walkthroughs.wire.framing import MAGIC, schema_id, unframe
from walkthroughs.wire.schema import Reason

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
    samples: tuple[Letter, ...] = ()  # the first few, in the order read


class Summary:
    """Dead letters tallied by reason as they are read: memory per reason, not per letter.

    The reasons are the fixed set of ``known_reasons``, so a DLQ of millions of records (or of
    hostile error headers) makes a table of at most that many rows.
    """

    def __init__(self, samples_per_reason: int = 0) -> None:
        self._samples = samples_per_reason
        self._tallies: dict[str, _Tally] = {}

    def add(self, letter: Letter) -> None:
        """Count one dead letter; keep it as a sample if its reason has fewer than wanted."""
        tally = self._tallies.get(letter.reason)
        if tally is None:
            tally = self._tallies[letter.reason] = _Tally(letter)
        tally.add(letter)
        if len(tally.samples) < self._samples:
            tally.samples.append(letter)

    def rows(self) -> list[ReasonRow]:
        """One row per reason, most frequent first."""
        rows = [t.row(reason) for reason, t in self._tallies.items()]
        return sorted(rows, key=lambda r: (-r.count, r.reason))


class _Tally:
    def __init__(self, first: Letter) -> None:
        self.count = self.redriven = 0
        self.first_offset = self.last_offset = first.offset
        self.first_ms = self.last_ms = first.timestamp_ms
        self.samples: list[Letter] = []

    def add(self, letter: Letter) -> None:
        self.count += 1
        self.redriven += 1 if letter.redrive_count else 0
        self.first_offset = min(self.first_offset, letter.offset)
        self.last_offset = max(self.last_offset, letter.offset)
        self.first_ms = min(self.first_ms, letter.timestamp_ms)
        self.last_ms = max(self.last_ms, letter.timestamp_ms)

    def row(self, reason: str) -> ReasonRow:
        return ReasonRow(
            reason,
            self.count,
            self.first_offset,
            self.last_offset,
            _at(self.first_ms),
            _at(self.last_ms),
            self.redriven,
            tuple(self.samples),
        )


class Verdict(Enum):
    """What a redrive does with the latest dead letter of a lineage of the chosen reason."""

    SEND = "send"
    STOPPED = "stopped"  # redriven the limit of times: reported, not sent (the loop guard)
    TRUNCATED = "truncated"  # only a prefix of the bytes is left: cannot be sent as it was
    STRAY = "stray"  # its source topic is not an input of the service (any more)


class _Attempt(NamedTuple):
    """The little a plan keeps of a dead letter: enough to rank it and judge it."""

    redrive_count: int
    partition: int
    offset: int
    reason: str
    truncated: bool
    source_topic: str


class RedrivePlanner:
    """The first of a redrive's two passes over the DLQ: the latest attempt of each lineage.

    It keeps a small tuple per lineage under an 8-byte digest of it (about 200 bytes a lineage
    in all), never the bytes of a record; the second pass re-reads the same offsets and sends
    the letters the plan chose.
    """

    def __init__(self) -> None:
        self._latest: dict[bytes, _Attempt] = {}

    def add(self, letter: Letter) -> None:
        """Take one dead letter into account."""
        attempt = _Attempt(
            letter.redrive_count,
            letter.partition,
            letter.offset,
            letter.reason,
            letter.truncated,
            sys.intern(letter.source[0]),
        )
        lineage = _lineage_digest(letter)
        held = self._latest.get(lineage)
        if held is None or attempt[:3] > held[:3]:
            self._latest[lineage] = attempt

    def plan(
        self, reason: str, max_redrives: int, inputs: Collection[str] | None = None
    ) -> RedrivePlan:
        """Judge the lineages whose latest attempt failed for ``reason``.

        ``inputs``: the topics the service reads now (``None``: any topic).
        """
        verdicts: dict[tuple[int, int], tuple[Verdict, bytes]] = {}
        sources: Counter[str] = Counter()
        for lineage, a in self._latest.items():
            if a.reason != reason:
                continue
            if a.redrive_count >= max_redrives:
                verdict = Verdict.STOPPED
            elif a.truncated:
                verdict = Verdict.TRUNCATED
            elif inputs is not None and a.source_topic not in inputs:
                verdict = Verdict.STRAY
            else:
                verdict = Verdict.SEND
                sources[a.source_topic] += 1
            verdicts[(a.partition, a.offset)] = (verdict, lineage)
        return RedrivePlan(verdicts, dict(sources))


def _lineage_digest(letter: Letter) -> bytes:
    return hashlib.blake2b(letter.lineage.encode(errors="replace"), digest_size=8).digest()


@dataclass(frozen=True)
class RedrivePlan:
    """The verdict on each chosen dead letter, by its position in the DLQ."""

    verdicts: Mapping[tuple[int, int], tuple[Verdict, bytes]]  # and the lineage's digest
    sends_per_topic: Mapping[str, int]  # of the letters to send, how many go to each topic

    def count(self, verdict: Verdict) -> int:
        """How many chosen letters have this verdict."""
        return sum(1 for v, _ in self.verdicts.values() if v is verdict)

    def judge(self, letters: Iterable[Letter]) -> Iterator[tuple[Verdict, Letter]]:
        """The second pass: the letters the plan chose, each with its verdict, in order read.

        A position that holds another lineage than planned (the topic was deleted and made
        anew between the passes) is passed over: only what was judged is ever sent.
        """
        for letter in letters:
            planned = self.verdicts.get((letter.partition, letter.offset))
            if planned is not None and planned[1] == _lineage_digest(letter):
                yield planned[0], letter


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
    if value and value[0] == MAGIC:  # a Schema Registry frame (``framing``): show what it holds
        try:
            prefix, value = f"{prefix}(framed, schema id {schema_id(value)}) ", unframe(value)
        except DecodeError as exc:
            return f"{prefix}{len(value)} bytes, {exc.detail}"
    try:
        parsed = parser.FromString(value)
    except ProtobufDecodeError:
        return f"{prefix}{len(value)} bytes that do not parse as {parser.DESCRIPTOR.name}"
    return prefix + _cut(text_format.MessageToString(parsed, as_one_line=True) or "(empty)")


def _cut(text: str) -> str:
    text = shown(text)
    return text if len(text) <= _SAMPLE_CHARS else text[: _SAMPLE_CHARS - 3] + "..."


def shown(text: str) -> str:
    """``text`` safe for a terminal: what is not printable is escaped.

    A hostile header may hold control characters or bidi overrides that rewrite an operator's
    terminal or disguise what it shows.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or b"0")
    except ValueError:
        return 0


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
