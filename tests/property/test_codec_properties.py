"""Property tests of the codec: encode -> decode round-trips; decode never fails but cleanly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from walkthroughs.errors import DecodeError
from walkthroughs.wire import codec
from walkthroughs.wire.schema import Channel, MessageEvent, WalkInEvent, Walkthrough

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = [
    "",
    "UTC",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "America/St_Johns",
    "Europe/London",
    "Pacific/Pago_Pago",
    "Asia/Kathmandu",
]

ids = st.text(min_size=1, max_size=40)
texts = st.text(max_size=40)
instants = st.integers(min_value=codec.MIN_TIMESTAMP_NS, max_value=codec.END_TIMESTAMP_NS - 1)
channels = st.sampled_from([int(c) for c in Channel])


def reference_local_date(at_ns: int, zone: str) -> str:
    """The same date computed another way: UTC datetime arithmetic, then astimezone."""
    instant = EPOCH + timedelta(microseconds=at_ns // 1000)
    return instant.astimezone(ZoneInfo(zone) if zone else UTC).date().isoformat()


@given(st.builds(MessageEvent, ids, ids, ids, instants, channels, texts))
def test_message_round_trips(message: MessageEvent) -> None:
    assert codec.decode_message(codec.encode_message(message)) == message


@given(ids, ids, ids, texts, instants, st.sampled_from(ZONES), st.none() | instants)
def test_walkin_round_trips_with_its_local_date(
    walkin_id: str,
    business: str,
    customer: str,
    location: str,
    at_ns: int,
    zone: str,
    ended_ns: int | None,
) -> None:
    expected = WalkInEvent(
        walkin_id, business, customer, location, at_ns, reference_local_date(at_ns, zone)
    )
    raw = codec.encode_walkin(expected, timezone=zone, ended_at_ns=ended_ns)
    assert codec.decode_walkin(raw) == expected


@given(
    st.builds(
        Walkthrough,
        ids,
        ids,
        ids,
        texts,
        instants,
        ids,
        channels,
        texts,
        instants,
        st.dates().map(lambda d: d.isoformat()),
    )
)
def test_walkthrough_round_trips(walkthrough: Walkthrough) -> None:
    assert codec.decode_walkthrough(codec.encode_walkthrough(walkthrough)) == walkthrough


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    for decode in (codec.decode_message, codec.decode_walkin):
        reason = ""
        try:
            decode(raw)
        except DecodeError as exc:
            reason = str(exc)
            assert reason, "every rejection carries a reason"
