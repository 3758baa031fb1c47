"""Bytes <-> domain records: decode and validate the wire schema, encode walkthroughs.

Pure: no I/O. Every rejection raises ``DecodeError`` with a ``Reason`` (the metric label) and a
detail that names the field and the offending value, so the dead-letter ``error`` header reads
e.g. ``missing field customer_id`` or ``invalid timezone 'Mars/Olympus'``.

Validity (the contract): a message needs ``message_id``, ``business_id``, ``customer_id`` and
``sent_at``; a walk-in needs ``walkin_id``, ``business_id``, ``customer_id`` and ``started_at``.
Every timestamp present, required or optional, must lie in years 2000-2100 (UTC) with nanos in
``[0, 1e9)``; a channel must be a number of the enum; a timezone must be a known IANA name or
empty (UTC). Unknown fields are ignored (forward compatibility with newer producers). A record
framed by a Schema Registry serializer is unframed first (``framing``), whatever its topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from importlib import resources
from types import MappingProxyType
from typing import TypeVar
from zoneinfo import ZoneInfo

from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.errors import DecodeError
from walkthroughs.utils.caches import BoundedCache, memoize
from walkthroughs.utils.sharing import shared, shared_get
from walkthroughs.wire.framing import unframe
from walkthroughs.wire.schema import (
    CHANNEL_NUMBERS,
    Channel,
    DeadLetter,
    MessageEvent,
    Origin,
    Reason,
    WalkInEvent,
    Walkthrough,
    new_message,
    new_walkin,
)

NS_PER_S = 1_000_000_000
# Valid timestamps lie in years 2000 through 2100, UTC: [2000-01-01T00:00Z, 2101-01-01T00:00Z).
MIN_TIMESTAMP_NS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S
END_TIMESTAMP_NS = int(datetime(2101, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_S
_SHOWN_CHARS = 80  # offending values are quoted in error headers, cut to this length
MAX_ID_BYTES = 1024
"""The longest id (UTF-8 bytes) a record may carry, in any id field: message, walk-in,
business, customer, campaign and location ids. Longer ones make the record bad (``id too
long``): every id is copied into state, into walkthroughs (a Kafka record and a MongoDB
document) and into dead-letter headers, and a record of a few such ids must stay far below
Kafka's 1 MB record limit, or one producer's bug would make outputs the service cannot write."""

_M = TypeVar("_M", pb.ZenreachMessage, pb.WalkIn, pb.Walkthrough)
NO_ALIASES: Mapping[str, str] = MappingProxyType({})


def decode_message(value: bytes | None) -> MessageEvent:
    """Decode and validate a ``ZenreachMessage``.

    Args:
        value: the Kafka record value (``None`` for a tombstone).

    Returns:
        The message as a compact record.

    Raises:
        DecodeError: the record is bad; its reason says why.
    """
    msg = _parse(pb.ZenreachMessage, value)
    # Each field is read once: a protobuf attribute read builds a new Python object every time.
    message_id, business_id, customer_id = msg.message_id, msg.business_id, msg.customer_id
    if not (message_id and business_id and customer_id):
        raise _missing_field(msg, _MESSAGE_IDS)
    campaign_id = msg.campaign_id
    if max(len(message_id), len(business_id), len(customer_id), len(campaign_id)) > _SAFE_CHARS:
        _check_id_sizes(_MESSAGE_ID_FIELDS, (message_id, business_id, customer_id, campaign_id))
    sent_at_ns = _required_timestamp_ns(msg, msg.sent_at, "sent_at")
    channel = msg.channel
    if channel not in CHANNEL_NUMBERS:
        raise DecodeError(Reason.INVALID_CHANNEL, str(channel))
    return new_message(
        (
            message_id,
            shared_get(business_id) or shared(business_id),
            customer_id,
            sent_at_ns,
            channel,
            shared_get(campaign_id) or shared(campaign_id),
        )
    )


def decode_walkin(value: bytes | None, aliases: Mapping[str, str] = NO_ALIASES) -> WalkInEvent:
    """Decode and validate a ``WalkIn``; compute its local date from its timezone.

    Args:
        value: the Kafka record value (``None`` for a tombstone).
        aliases: zone names tzdata lacks -> the zone to use (``WALKTHROUGHS_TIMEZONE_ALIASES``).

    Returns:
        The walk-in as a compact record.

    Raises:
        DecodeError: the record is bad; its reason says why.
    """
    msg = _parse(pb.WalkIn, value)
    walkin_id, business_id, customer_id = msg.walkin_id, msg.business_id, msg.customer_id
    if not (walkin_id and business_id and customer_id):
        raise _missing_field(msg, _WALKIN_IDS)
    location_id = msg.location_id
    if max(len(walkin_id), len(business_id), len(customer_id), len(location_id)) > _SAFE_CHARS:
        _check_id_sizes(_WALKIN_ID_FIELDS, (walkin_id, business_id, customer_id, location_id))
    started_at_ns = _required_timestamp_ns(msg, msg.started_at, "started_at")
    if msg.HasField("ended_at"):
        _timestamp_ns(msg.ended_at, "ended_at")
    timezone = msg.timezone
    if aliases:
        timezone = aliases.get(timezone, timezone)
    # local_date's cache looked up here first: a hit is most walk-ins, and a call costs more.
    date = _local_dates_get((started_at_ns // NS_PER_MINUTE, timezone)) or local_date(
        started_at_ns, timezone
    )
    return new_walkin(
        (
            walkin_id,
            shared_get(business_id) or shared(business_id),
            customer_id,
            shared_get(location_id) or shared(location_id),
            started_at_ns,
            date,  # shared: the cache holds one copy of each
        )
    )


def _indexes(name: str) -> tuple[int]:
    """Where a message sits in ``events.proto``: its records' frame indexes (``framing``)."""
    return (list(pb.DESCRIPTOR.message_types_by_name).index(name),)


MESSAGE_INDEXES = _indexes("ZenreachMessage")
WALKIN_INDEXES = _indexes("WalkIn")
WALKTHROUGH_INDEXES = _indexes("Walkthrough")


def encode_walkthrough(w: Walkthrough) -> bytes:
    """Serialize a walkthrough to the wire schema (the output topic's value)."""
    msg = pb.Walkthrough(
        walkin_id=w.walkin_id,
        business_id=w.business_id,
        customer_id=w.customer_id,
        location_id=w.location_id,
        message_id=w.message_id,
        channel=w.channel,  # type: ignore[arg-type]  # an int of the enum, as the wire wants
        campaign_id=w.campaign_id,
        local_date=w.local_date,
    )
    # Setting the timestamps' fields in place: a quarter faster than building Timestamp objects
    # to be copied in (this runs once per walkthrough emitted).
    walkin_at, sent_at = msg.walkin_at, msg.message_sent_at
    walkin_at.seconds, walkin_at.nanos = divmod(w.walkin_at_ns, NS_PER_S)
    sent_at.seconds, sent_at.nanos = divmod(w.message_sent_at_ns, NS_PER_S)
    return msg.SerializeToString(deterministic=True)


def decode_walkthrough(value: bytes) -> Walkthrough:
    """Parse an output-topic value back into a record (for tools and tests; no validation)."""
    w = _parse(pb.Walkthrough, value)
    return Walkthrough(
        w.walkin_id,
        w.business_id,
        w.customer_id,
        w.location_id,
        _ns(w.walkin_at),
        w.message_id,
        w.channel,
        w.campaign_id,
        _ns(w.message_sent_at),
        w.local_date,
    )


def encode_message(m: MessageEvent) -> bytes:
    """Serialize a message to the wire schema (for the traffic generator and tests)."""
    return pb.ZenreachMessage(
        message_id=m.message_id,
        business_id=m.business_id,
        customer_id=m.customer_id,
        channel=m.channel,  # type: ignore[arg-type]
        sent_at=_timestamp(m.sent_at_ns),
        campaign_id=m.campaign_id,
    ).SerializeToString(deterministic=True)


def encode_walkin(w: WalkInEvent, *, timezone: str = "", ended_at_ns: int | None = None) -> bytes:
    """Serialize a walk-in to the wire schema (for the traffic generator and tests).

    ``WalkInEvent`` keeps the local date, not the zone it came from, so the zone is an argument.
    """
    msg = pb.WalkIn(
        walkin_id=w.walkin_id,
        business_id=w.business_id,
        customer_id=w.customer_id,
        location_id=w.location_id,
        started_at=_timestamp(w.started_at_ns),
        timezone=timezone,
    )
    if ended_at_ns is not None:
        msg.ended_at.CopyFrom(_timestamp(ended_at_ns))
    return msg.SerializeToString(deterministic=True)


def local_date(at_ns: int, timezone: str) -> str:
    """Return ``YYYY-MM-DD`` of an instant in an IANA zone ("" is UTC).

    The local date is constant within a UTC minute: from 2000 to 2100 every zone's offset is a
    whole number of minutes and changes only on minute boundaries. Caching per minute turns the
    costly zone arithmetic into a dictionary lookup for all events of that minute.

    Raises:
        DecodeError: the zone is unknown.
    """
    key = (at_ns // NS_PER_MINUTE, timezone)
    found = _LOCAL_DATES.get(key)
    if found is None:
        day = datetime.fromtimestamp(key[0] * 60, zone(timezone)).date().isoformat()
        found = _LOCAL_DATES.put(key, shared(day))
    return found


NS_PER_MINUTE = 60 * NS_PER_S
_LOCAL_DATES: BoundedCache[tuple[int, str], str] = BoundedCache("local_dates", 65_536)
_local_dates_get = _LOCAL_DATES.get


TZDATA_ZONES = frozenset(resources.files("tzdata").joinpath("zones").read_text().split())
"""Every zone name of the pinned ``tzdata`` package: the only zones the service knows.

``ZoneInfo(name)`` would look in the host's zone files first (``zoneinfo.TZPATH``), so a pod on
a base image that ships ``localtime``, ``right/UTC`` or an older or newer database would accept
other names, or compute other dates, than a pod on a slim image. Zones are therefore read from
the pinned package only, and a name it does not list is invalid everywhere alike."""


@memoize("zones", 4096)
def zone(name: str) -> tzinfo:
    """Resolve an IANA zone name once ("" is UTC); names ``tzdata`` lacks raise ``DecodeError``."""
    if not name:
        return UTC
    if name not in TZDATA_ZONES:
        raise DecodeError(Reason.INVALID_TIMEZONE, _show(name))
    # Listed names are plain relative paths of the package's zoneinfo folder (no "..", no NUL).
    with resources.files("tzdata.zoneinfo").joinpath(name).open("rb") as data:
        return ZoneInfo.from_file(data, key=name)


# ---------------------------------------------------------------------------------------------


def _parse(cls: type[_M], value: bytes | None) -> _M:
    if value is None:
        raise DecodeError(Reason.UNDECODABLE, "record has no value (tombstone)")
    if value and not value[0]:  # a Schema Registry frame (``framing``): bare never starts so
        # Inline, the frames of nearly every record: after the magic byte and the schema id,
        # [0] as one 0 byte, or [k] (k < 64) as a count of 1 (2, zigzag) and one byte.
        try:
            indexes = value[5]
            if not indexes:
                value = value[6:]
            elif indexes == 2 and value[6] < 0x80:
                value = value[7:]
            else:
                value = unframe(value)
        except IndexError:  # cut short: ``unframe`` says where
            value = unframe(value)
    try:
        return cls.FromString(value)
    except ProtobufDecodeError as exc:
        cause = str(exc).rsplit(": ", 1)[-1]  # "Error parsing message with type X: <cause>"
        detail = f"{cls.DESCRIPTOR.name}: {cause}"
        raise DecodeError(Reason.UNDECODABLE, detail) from exc


_MESSAGE_IDS = ("message_id", "business_id", "customer_id")
_WALKIN_IDS = ("walkin_id", "business_id", "customer_id")
_MESSAGE_ID_FIELDS = (*_MESSAGE_IDS, "campaign_id")
_WALKIN_ID_FIELDS = (*_WALKIN_IDS, "location_id")
_SAFE_CHARS = MAX_ID_BYTES // 4  # a UTF-8 character is at most 4 bytes: no need to encode


def _check_id_sizes(names: tuple[str, ...], values: tuple[str, ...]) -> None:
    """Reject the record if an id is longer than ``MAX_ID_BYTES`` in UTF-8 (the slow path)."""
    for name, value in zip(names, values, strict=True):
        size = len(value.encode())
        if size > MAX_ID_BYTES:
            detail = f"{name}: {size} bytes, at most {MAX_ID_BYTES}"
            raise DecodeError(Reason.ID_TOO_LONG, detail)


def _missing_field(msg: pb.ZenreachMessage | pb.WalkIn, fields: tuple[str, ...]) -> DecodeError:
    """The error naming the first of ``fields`` that is empty (one of them is)."""
    missing = next(field for field in fields if not getattr(msg, field))
    return DecodeError(Reason.MISSING_FIELD, missing)


def _required_timestamp_ns(msg: pb.ZenreachMessage | pb.WalkIn, ts: Timestamp, field: str) -> int:
    """A required timestamp's nanoseconds; whether it is set is asked only if it is invalid.

    An unset timestamp reads as 0 s, 0 ns: 1970, outside the valid years, so a valid value is
    always a set one (and ``HasField``, a C call per record, is needed only to name the fault).
    """
    seconds, nanos = ts.seconds, ts.nanos
    at_ns = seconds * NS_PER_S + nanos
    if 0 <= nanos < NS_PER_S and MIN_TIMESTAMP_NS <= at_ns < END_TIMESTAMP_NS:
        return at_ns
    if not msg.HasField(field):
        raise DecodeError(Reason.MISSING_FIELD, field)
    return _timestamp_ns(ts, field)


def _timestamp_ns(ts: Timestamp, field: str) -> int:
    seconds, nanos = ts.seconds, ts.nanos
    at_ns = seconds * NS_PER_S + nanos
    if 0 <= nanos < NS_PER_S and MIN_TIMESTAMP_NS <= at_ns < END_TIMESTAMP_NS:
        return at_ns
    if not 0 <= nanos < NS_PER_S:
        detail = f"{field}: nanos {nanos} outside [0, 999999999]"
    else:
        detail = f"{field}: {seconds}s since epoch is outside years 2000-2100"
    raise DecodeError(Reason.INVALID_TIMESTAMP, detail)


def _timestamp(at_ns: int) -> Timestamp:
    seconds, nanos = divmod(at_ns, NS_PER_S)
    return Timestamp(seconds=seconds, nanos=nanos)


def _ns(ts: Timestamp) -> int:
    return ts.seconds * NS_PER_S + ts.nanos


def _show(value: str) -> str:
    shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
    return repr(shown)


def to_mongo_doc(w: Walkthrough) -> dict[str, object]:
    """Return the ``walkthroughs`` collection document of a walkthrough.

    Every Walkthrough field under its proto name; times as BSON dates (UTC, truncated to the
    millisecond); the channel as its enum name. ``message_sent_at_ns`` keeps the exact send time,
    so that the sink can order revisions of one walk-in by ``(message_sent_at, message_id)``.
    """
    return {
        "_id": w.walkin_id,
        "walkin_id": w.walkin_id,
        "business_id": w.business_id,
        "customer_id": w.customer_id,
        "location_id": w.location_id,
        "walkin_at": bson_datetime(w.walkin_at_ns),
        "message_id": w.message_id,
        "channel": channel_name(w.channel),
        "campaign_id": w.campaign_id,
        "message_sent_at": bson_datetime(w.message_sent_at_ns),
        "message_sent_at_ns": w.message_sent_at_ns,
        "local_date": w.local_date,
    }


def bson_datetime(at_ns: int) -> datetime:
    """Return an aware UTC datetime truncated to the millisecond (BSON date precision)."""
    return _EPOCH + timedelta(milliseconds=at_ns // 1_000_000)


def channel_name(number: int) -> str:
    """Return the enum name of a channel number."""
    return Channel(number).name


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decode_record(
    origin: Origin, message_topics: frozenset[str], aliases: Mapping[str, str] = NO_ALIASES
) -> tuple[MessageEvent | WalkInEvent, Origin] | DeadLetter:
    """Decode an input record by its topic's kind; a bad one becomes a dead letter, never raises."""
    try:
        if origin.topic in message_topics:
            return decode_message(origin.value), origin
        return decode_walkin(origin.value, aliases), origin
    except DecodeError as exc:
        return DeadLetter(origin, exc.reason, str(exc))
