"""Decode + validate every rule of the contract's "valid input", and encode walkthroughs."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal, TypedDict, Unpack, cast

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.errors import DecodeError
from walkthroughs.wire import codec
from walkthroughs.wire.schema import Channel, MessageEvent, Reason, WalkInEvent, Walkthrough

T0 = datetime(2026, 11, 24, 23, 30, 15, 123456, tzinfo=UTC)
T0_S = int(T0.timestamp())


def ts(seconds: int = T0_S, nanos: int = 789) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


class MessageFields(TypedDict, total=False):
    """The fields of a ``ZenreachMessage``; None leaves one out (protobuf reads None as unset)."""

    message_id: str | None
    business_id: str | None
    customer_id: str | None
    channel: pb.Channel | None
    sent_at: Timestamp | None
    campaign_id: str | None


class WalkInFields(TypedDict, total=False):
    """The fields of a ``WalkIn``; None leaves one out."""

    walkin_id: str | None
    business_id: str | None
    customer_id: str | None
    location_id: str | None
    started_at: Timestamp | None
    ended_at: Timestamp | None
    timezone: str | None


MessageIdField = Literal["message_id", "business_id", "customer_id", "campaign_id"]
WalkInIdField = Literal["walkin_id", "business_id", "customer_id", "location_id"]


def unnamed_channel(number: int) -> pb.Channel:
    """A channel number the schema does not name. Protobuf enums are open (any int32 travels),
    but the generated stubs type a field as the named values only."""
    return cast("pb.Channel", number)


def message(**overrides: Unpack[MessageFields]) -> pb.ZenreachMessage:
    fields: MessageFields = {
        "message_id": "m-1",
        "business_id": "b-1",
        "customer_id": "c-1",
        "channel": pb.SMS,
        "sent_at": ts(),
        "campaign_id": "camp",
    }
    fields.update(overrides)
    return pb.ZenreachMessage(**fields)


def walkin(**overrides: Unpack[WalkInFields]) -> pb.WalkIn:
    fields: WalkInFields = {
        "walkin_id": "w-1",
        "business_id": "b-1",
        "customer_id": "c-1",
        "location_id": "l-1",
        "started_at": ts(),
        "ended_at": ts(T0_S + 600, 0),
        "timezone": "America/New_York",
    }
    fields.update(overrides)
    return pb.WalkIn(**fields)


def message_with(field_name: MessageIdField, value: str) -> pb.ZenreachMessage:
    """``message()`` with one of its id fields set to ``value``."""
    overrides: MessageFields = {}
    overrides[field_name] = value
    return message(**overrides)


def walkin_with(field_name: WalkInIdField, value: str) -> pb.WalkIn:
    """``walkin()`` with one of its id fields set to ``value``."""
    overrides: WalkInFields = {}
    overrides[field_name] = value
    return walkin(**overrides)


def test_decode_message_keeps_every_field() -> None:
    got = codec.decode_message(message().SerializeToString())
    assert got == MessageEvent("m-1", "b-1", "c-1", T0_S * 10**9 + 789, Channel.SMS, "camp")


def test_decode_walkin_computes_local_date_in_its_zone() -> None:
    # 23:30 UTC on the 24th is 18:30 on the 24th in New York, 08:30 on the 25th in Tokyo.
    ny = codec.decode_walkin(walkin().SerializeToString())
    assert ny == WalkInEvent("w-1", "b-1", "c-1", "l-1", T0_S * 10**9 + 789, "2026-11-24")
    tokyo = codec.decode_walkin(walkin(timezone="Asia/Tokyo").SerializeToString())
    assert tokyo.local_date == "2026-11-25"


def test_empty_timezone_means_utc() -> None:
    late_utc = ts(int(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()), 999_999_999)
    got = codec.decode_walkin(walkin(timezone="", started_at=late_utc).SerializeToString())
    assert got.local_date == "2026-03-01"


@pytest.mark.parametrize(
    "optional",
    [{"campaign_id": None}, {"channel": pb.CHANNEL_UNSPECIFIED}],
    ids=["no-campaign", "channel-unspecified"],
)
def test_optional_message_fields_may_be_absent(optional: MessageFields) -> None:
    got = codec.decode_message(message(**optional).SerializeToString())
    assert got.message_id == "m-1"


@pytest.mark.parametrize(
    "optional",
    [{"location_id": None}, {"ended_at": None}, {"timezone": None}],
    ids=["no-location", "no-ended-at", "no-timezone"],
)
def test_optional_walkin_fields_may_be_absent(optional: WalkInFields) -> None:
    assert codec.decode_walkin(walkin(**optional).SerializeToString()).walkin_id == "w-1"


MIN_S = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
END_S = int(datetime(2101, 1, 1, tzinfo=UTC).timestamp())

BAD_MESSAGES = [
    ("tombstone", None, Reason.UNDECODABLE, "undecodable record has no value (tombstone)"),
    ("garbage", b"\xff\xff\xff", Reason.UNDECODABLE, "undecodable ZenreachMessage"),
    ("truncated", message().SerializeToString()[:-3], Reason.UNDECODABLE, "undecodable"),
    ("bad-utf8", b"\x0a\x02\xff\xfe", Reason.UNDECODABLE, "undecodable"),
    ("empty", b"", Reason.MISSING_FIELD, "missing field message_id"),
    (
        "no-id",
        message(message_id="").SerializeToString(),
        Reason.MISSING_FIELD,
        "missing field message_id",
    ),
    (
        "no-business",
        message(business_id="").SerializeToString(),
        Reason.MISSING_FIELD,
        "missing field business_id",
    ),
    (
        "no-customer",
        message(customer_id="").SerializeToString(),
        Reason.MISSING_FIELD,
        "missing field customer_id",
    ),
    (
        "no-sent-at",
        message(sent_at=None).SerializeToString(),
        Reason.MISSING_FIELD,
        "missing field sent_at",
    ),
    (
        "epoch",
        message(sent_at=ts(0, 0)).SerializeToString(),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp sent_at",
    ),
    (
        "before-2000",
        message(sent_at=ts(MIN_S - 1, 999_999_999)).SerializeToString(),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp sent_at",
    ),
    (
        "after-2100",
        message(sent_at=ts(END_S, 0)).SerializeToString(),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp sent_at",
    ),
    (
        "negative",
        message(sent_at=ts(-5, 0)).SerializeToString(),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp sent_at",
    ),
    (
        "bad-nanos",
        message(sent_at=ts(T0_S, 1_000_000_000)).SerializeToString(),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp sent_at: nanos",
    ),
    (
        "negative-nanos",
        message(sent_at=ts(T0_S, -1)).SerializeToString(),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp sent_at: nanos",
    ),
    (
        "channel-5",
        message(channel=unnamed_channel(5)).SerializeToString(),
        Reason.INVALID_CHANNEL,
        "invalid channel 5",
    ),
    (
        "channel-negative",
        message(channel=unnamed_channel(-1)).SerializeToString(),
        Reason.INVALID_CHANNEL,
        "invalid channel -1",
    ),
]


@pytest.mark.parametrize(
    ("raw", "reason", "error"), [c[1:] for c in BAD_MESSAGES], ids=[c[0] for c in BAD_MESSAGES]
)
def test_bad_message_is_rejected_with_reason(raw: bytes | None, reason: Reason, error: str) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode_message(raw)
    assert caught.value.reason is reason
    assert str(caught.value).startswith(error)


BAD_WALKINS = [
    ("no-id", walkin(walkin_id=""), Reason.MISSING_FIELD, "missing field walkin_id"),
    ("no-business", walkin(business_id=""), Reason.MISSING_FIELD, "missing field business_id"),
    ("no-customer", walkin(customer_id=""), Reason.MISSING_FIELD, "missing field customer_id"),
    ("no-started-at", walkin(started_at=None), Reason.MISSING_FIELD, "missing field started_at"),
    (
        "started-2101",
        walkin(started_at=ts(END_S, 0)),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp started_at",
    ),
    (
        "ended-1999",
        walkin(ended_at=ts(MIN_S - 1, 0)),
        Reason.INVALID_TIMESTAMP,
        "invalid timestamp ended_at",
    ),
    (
        "unknown-zone",
        walkin(timezone="Mars/Olympus_Mons"),
        Reason.INVALID_TIMEZONE,
        "invalid timezone 'Mars/Olympus_Mons'",
    ),
    ("zone-folder", walkin(timezone="America"), Reason.INVALID_TIMEZONE, "invalid timezone"),
    ("zone-path", walkin(timezone="../../etc/passwd"), Reason.INVALID_TIMEZONE, "invalid timezone"),
    (
        "zone-absolute",
        walkin(timezone="/etc/localtime"),
        Reason.INVALID_TIMEZONE,
        "invalid timezone",
    ),
    ("zone-nul", walkin(timezone="UTC\x00"), Reason.INVALID_TIMEZONE, "invalid timezone"),
    ("zone-case", walkin(timezone="america/new_york"), Reason.INVALID_TIMEZONE, "invalid timezone"),
]


@pytest.mark.parametrize(
    ("msg", "reason", "error"), [c[1:] for c in BAD_WALKINS], ids=[c[0] for c in BAD_WALKINS]
)
def test_bad_walkin_is_rejected_with_reason(msg: pb.WalkIn, reason: Reason, error: str) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode_walkin(msg.SerializeToString())
    assert caught.value.reason is reason
    assert str(caught.value).startswith(error)


@pytest.mark.parametrize(
    "seconds_nanos",
    [(MIN_S, 0), (END_S - 1, 999_999_999)],
    ids=["first-ns-of-2000", "last-ns-of-2100"],
)
def test_timestamp_range_is_inclusive_of_years_2000_and_2100(
    seconds_nanos: tuple[int, int],
) -> None:
    got = codec.decode_message(message(sent_at=ts(*seconds_nanos)).SerializeToString())
    assert got.sent_at_ns == seconds_nanos[0] * 10**9 + seconds_nanos[1]


def test_long_offending_value_is_cut_in_the_reason() -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode_walkin(walkin(timezone="X" * 10_000).SerializeToString())
    assert len(str(caught.value)) < 120


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    extra = b"\xa0\x06\x01"  # field 100, varint 1: a field a newer producer might add
    got = codec.decode_message(message().SerializeToString() + extra)
    assert got.message_id == "m-1"


def test_wrong_wire_type_in_a_known_field_is_rejected() -> None:
    # Field 1 (message_id) sent as a varint instead of a string: protobuf keeps it as an unknown
    # field, so message_id reads as absent and the record is rejected, not half-accepted.
    raw = b"\x08\x07" + message(message_id="").SerializeToString()
    with pytest.raises(DecodeError) as caught:
        codec.decode_message(raw)
    assert str(caught.value) == "missing field message_id"


def test_ids_may_hold_any_utf8() -> None:
    odd = "b:1\u00e9\U0001f600 \t"
    got = codec.decode_message(message(business_id=odd, customer_id=":").SerializeToString())
    assert (got.business_id, got.customer_id) == (odd, ":")


def test_encode_walkthrough_round_trips_through_the_wire_schema() -> None:
    w = Walkthrough(
        "w-1",
        "b-1",
        "c-1",
        "l-1",
        T0_S * 10**9 + 5,
        "m-9",
        Channel.PUSH,
        "",
        (T0_S - 3600) * 10**9,
        "2026-11-24",
    )
    raw = codec.encode_walkthrough(w)
    wire = pb.Walkthrough.FromString(raw)
    assert wire.walkin_at == ts(T0_S, 5)
    assert wire.message_sent_at == ts(T0_S - 3600, 0)
    assert wire.channel == pb.PUSH
    assert codec.decode_walkthrough(raw) == w


def test_channel_numbers_match_the_wire_enum() -> None:
    assert {c.name: c.value for c in Channel} == dict(pb.Channel.items())


@pytest.mark.parametrize("field_name", ["message_id", "business_id", "customer_id", "campaign_id"])
def test_message_id_longer_than_the_limit_is_a_bad_record(field_name: MessageIdField) -> None:
    at_limit = codec.decode_message(message_with(field_name, "é" * 512).SerializeToString())
    assert getattr(at_limit, field_name) == "é" * 512  # 1024 bytes of UTF-8: accepted
    with pytest.raises(DecodeError) as caught:
        codec.decode_message(message_with(field_name, "é" * 512 + "x").SerializeToString())
    assert caught.value.reason is Reason.ID_TOO_LONG
    assert str(caught.value) == f"id too long {field_name}: 1025 bytes, at most 1024"


@pytest.mark.parametrize("field_name", ["walkin_id", "business_id", "customer_id", "location_id"])
def test_walkin_id_longer_than_the_limit_is_a_bad_record(field_name: WalkInIdField) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode_walkin(walkin_with(field_name, "w" * 600_000).SerializeToString())
    assert str(caught.value) == f"id too long {field_name}: 600000 bytes, at most 1024"


def test_zones_come_from_the_pinned_tzdata_only(tmp_path: Path) -> None:
    """A zone file the host has and tzdata lacks is an invalid zone, on every host alike.

    The host here is a folder put first on zoneinfo's search path, holding a real zone file
    under a name tzdata does not list: ``ZoneInfo`` itself would accept it.
    """
    utc = resources.files("tzdata.zoneinfo").joinpath("UTC").read_bytes()
    for name in ("localtime", "right/UTC", "Mars/Olympus"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(utc)
    zoneinfo.reset_tzpath(to=[str(tmp_path)])
    try:
        assert str(zoneinfo.ZoneInfo.no_cache("right/UTC")) == "right/UTC"  # the host has it
        for name in ("localtime", "right/UTC", "Mars/Olympus"):
            with pytest.raises(DecodeError) as caught:
                codec.decode_walkin(walkin(timezone=name).SerializeToString())
            assert str(caught.value) == f"invalid timezone {name!r}"
        paris = codec.decode_walkin(walkin(timezone="Europe/Paris").SerializeToString())
        assert paris.local_date == "2026-11-25"  # 23:30 UTC is past midnight in Paris
    finally:
        zoneinfo.reset_tzpath()
