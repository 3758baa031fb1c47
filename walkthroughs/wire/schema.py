"""Domain records and closed sets. No I/O, no protobuf: the attribution logic speaks only this.

Records are ``NamedTuple``s: the most compact Python object with named fields (a tuple, no
per-instance dict), immutable, and cheap to pickle, which matters because Bytewax pickles items
between workers and state into snapshots. Times are ``int`` nanoseconds since the Unix epoch,
UTC: exact (the wire carries nanoseconds), totally ordered, and a fraction of a ``datetime``'s size.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum, StrEnum
from functools import partial
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])


class Channel(IntEnum):
    """Marketing channel; values are the wire enum's numbers."""

    CHANNEL_UNSPECIFIED = 0
    EMAIL = 1
    SMS = 2
    FACEBOOK_AD = 3
    PUSH = 4


CHANNEL_NUMBERS = frozenset(int(c) for c in Channel)


class Reason(StrEnum):
    """Why a record went to the dead-letter topic: the first words of its ``error`` header."""

    UNDECODABLE = "undecodable"
    MISSING_FIELD = "missing field"
    INVALID_TIMESTAMP = "invalid timestamp"
    INVALID_CHANNEL = "invalid channel"
    INVALID_TIMEZONE = "invalid timezone"
    ID_TOO_LONG = "id too long"
    WALKIN_ID_REUSED = "walkin_id reused"
    LATE = "late"


class MessageEvent(NamedTuple):
    """A valid marketing message (wire ``ZenreachMessage``)."""

    message_id: str
    business_id: str
    customer_id: str
    sent_at_ns: int
    channel: int  # a Channel number, kept as int: IntEnum members pickle far larger
    campaign_id: str  # "" when absent


class WalkInEvent(NamedTuple):
    """A valid walk-in (wire ``WalkIn``).

    The walk-in's zone only serves to compute ``local_date``, so decode resolves it once and keeps
    the date; ``ended_at`` is validated on decode but not kept: nothing downstream uses either.
    """

    walkin_id: str
    business_id: str
    customer_id: str
    location_id: str  # "" when absent
    started_at_ns: int
    local_date: str  # YYYY-MM-DD of started_at in the walk-in's timezone


class Walkthrough(NamedTuple):
    """A walk-in attributed to a message: the service's output (wire ``Walkthrough``)."""

    walkin_id: str
    business_id: str
    customer_id: str
    location_id: str
    walkin_at_ns: int
    message_id: str
    channel: int
    campaign_id: str
    message_sent_at_ns: int
    local_date: str  # YYYY-MM-DD of walkin_at in the walk-in's timezone


class ReusedWalkIn(WalkInEvent):
    """A walk-in whose id another (business, customer) holds: the claim step's verdict.

    It goes on to its own customer's shard, which dead-letters it (``walkin_id reused``) unless
    the customer was erased: then it is dropped like every other event of an erased customer,
    never copied to the DLQ.
    """

    __slots__ = ()


class ErasureRequest(NamedTuple):
    """A request to forget one (business, customer) everywhere (the erasures topic)."""

    business_id: str
    customer_id: str
    requested_at_ns: int  # when ``erase`` asked: the audit log reports how long it took


class ErasureWithdrawn(ErasureRequest):
    """A tombstone of a request on the erasures topic: the operator deleted the request record.

    It changes nothing (what was erased stays erased, and the horizon runs on), but it must not
    be dead-lettered: its key holds the customer's ids, which the DLQ would keep.
    """

    __slots__ = ()


class Erased(NamedTuple):
    """What an erasure removed from state; the sinks remove the rest (MongoDB, the topic).

    ``walkin_ids`` are the customer's retained decided walk-ins that credited a message: their
    records are on the output topic, and their ids are still the customer's (claimed).
    ``ghost_ids`` are those of walk-ins let go that credited one: their claims have lapsed, so
    another customer may have taken the id since, and a tombstone would remove that
    customer's record. The MongoDB sink tombstones them only if their document is still the
    erased customer's (found by its index, with the older ones); without MongoDB, the flow
    tombstones them as it does ``walkin_ids``.
    """

    business_id: str
    customer_id: str
    walkin_ids: tuple[str, ...]
    messages: int
    walkins: int
    ghosts: int
    requested_at_ns: int
    ghost_ids: tuple[str, ...] = ()


class Tombstone(NamedTuple):
    """A null value for ``walkin_id`` on the output topic: compaction removes its records."""

    walkin_id: str


class Origin(NamedTuple):
    """Where an input record came from: what a dead letter must carry (the original bytes)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None  # as read; a redrive's count is among them


class Attributed(NamedTuple):
    """A walkthrough decided by the attribution logic, with what metrics need about it."""

    walkthrough: Walkthrough
    read_at_ns: int  # processing time the walk-in was read: latency = emit time - this
    revision: bool  # False for a walk-in's first walkthrough, True when it replaces an earlier one
    at_decision: bool = False  # emitted by the walk-in's first decision (hold passed, or EOF)


class DeadLetter(NamedTuple):
    """An input record that goes to the dead-letter topic, and why."""

    origin: Origin
    reason: Reason
    error: str  # the ``error`` header: the reason and what exactly was wrong


def built_from_fields(cls: type[T]) -> Callable[[tuple[Any, ...]], T]:
    """Return a constructor taking all fields as one tuple, for hot paths.

    ``Origin(...)`` runs a Python-level ``__new__`` (NamedTuple generates it), a visible share of
    a run at one per record (bench/README.md); ``tuple.__new__`` bound to the class is a C call.
    No check that the field count is right: callers pass every field, in order.
    """
    return partial(tuple.__new__, cls)


new_origin = built_from_fields(Origin)
new_message = built_from_fields(MessageEvent)
new_walkin = built_from_fields(WalkInEvent)
new_walkthrough = built_from_fields(Walkthrough)
new_attributed = built_from_fields(Attributed)
