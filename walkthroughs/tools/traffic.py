"""Realistic sample traffic, deterministic by seed: what `make run`, the tests and benches feed in.

Businesses message their customers over a few days, on every channel; delivery receipts arrive
minutes to hours late, so messages are produced out of order; some customers then walk into a
store (in one of several time zones) within days, some never do, and some walk in unprompted.
Producers are at-least-once (a few records twice) and a few records are bad, one of each kind
the service must dead-letter. Pure: no I/O; ``cli generate`` produces the records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.wire.codec import encode_message, encode_walkin, local_date
from walkthroughs.wire.framing import frame
from walkthroughs.wire.schema import MessageEvent, WalkInEvent

S = 1_000_000_000
MINUTE, HOUR, DAY = 60 * S, 3600 * S, 86400 * S
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Kolkata", ""]


@dataclass
class Traffic:
    """Records in production order, and the valid events behind them (for the reference)."""

    messages: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # (key, value)
    walkins: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    events: list[MessageEvent | WalkInEvent] = field(default_factory=list)
    bad: int = 0  # how many records are bad (each must reach the DLQ)


def generate(
    *,
    seed: int,
    businesses: int,
    customers: int,
    start_ns: int,
    days: int = 3,
    duplicate_rate: float = 0.03,
    bad_records: bool = True,
    prefix: str = "",
) -> Traffic:
    """Generate traffic for ``customers`` customers spread over ``businesses`` businesses.

    ``prefix`` goes in front of every customer and event id, so that successive calls can bring
    new customers (key churn) instead of the same ones again.
    """
    rng = random.Random(seed)
    timed_messages: list[tuple[int, bytes, bytes, MessageEvent]] = []
    timed_walkins: list[tuple[int, bytes, bytes, WalkInEvent]] = []
    for c in range(customers):
        business = f"biz-{rng.randrange(businesses):03d}"
        customer = f"{prefix}cust-{c:06d}"
        zone = rng.choice(ZONES)
        location = f"{business}/loc-{rng.randrange(3)}"
        last_sent = start_ns
        for m in range(rng.randrange(0, 4)):
            sent = start_ns + rng.randrange(days * DAY)
            last_sent = max(last_sent, sent)
            msg = MessageEvent(
                f"{prefix}msg-{c:06d}-{m}",
                business,
                customer,
                sent,
                rng.randrange(5),
                rng.choice(["", f"camp-{rng.randrange(20)}"]),
            )
            receipt = sent + rng.randrange(1, 6 * HOUR)  # delivery receipts come late
            timed_messages.append((receipt, msg.message_id.encode(), encode_message(msg), msg))
        for w in range(rng.choice([0, 0, 1, 1, 2])):
            # Within days of the last message, but never after the end of the period (now).
            started = min(last_sent + rng.randrange(-DAY, 5 * DAY), start_ns + days * DAY - 1)
            walkin = WalkInEvent(
                f"{prefix}walkin-{c:06d}-{w}",
                business,
                customer,
                location,
                started,
                local_date(started, zone),
            )
            raw = encode_walkin(walkin, timezone=zone, ended_at_ns=started + rng.randrange(HOUR))
            seen = started + rng.randrange(1, 30 * MINUTE)  # detection lags too
            timed_walkins.append((seen, location.encode(), raw, walkin))
    traffic = Traffic()
    for timed, out in ((timed_messages, traffic.messages), (timed_walkins, traffic.walkins)):
        timed.sort(key=lambda t: t[0])
        for _, key, value, event in timed:
            out.append((key, value))
            traffic.events.append(event)
            if rng.random() < duplicate_rate:  # at-least-once producers
                out.insert(rng.randrange(len(out) + 1), (key, value))
    if bad_records:
        _add_bad_records(traffic, rng, start_ns)
    return traffic


def _add_bad_records(traffic: Traffic, rng: random.Random, start_ns: int) -> None:
    ts = Timestamp(seconds=start_ns // S)
    bad_messages: list[bytes | None] = [
        None,  # a tombstone
        b"\xff\x00garbage",
        pb.ZenreachMessage(message_id="bad-1", business_id="b", sent_at=ts).SerializeToString(),
        pb.ZenreachMessage(
            message_id="bad-2",
            business_id="b",
            customer_id="c",
            channel=9,  # type: ignore[arg-type]  # not in the enum: that is the point
            sent_at=ts,
        ).SerializeToString(),
        pb.ZenreachMessage(
            message_id="bad-3", business_id="b", customer_id="c", sent_at=Timestamp(seconds=5)
        ).SerializeToString(),
    ]
    bad_walkins: list[bytes | None] = [
        pb.WalkIn(
            walkin_id="bad-4",
            business_id="b",
            customer_id="c",
            started_at=ts,
            timezone="Mars/Olympus_Mons",
        ).SerializeToString(),
        pb.WalkIn(walkin_id="bad-5", business_id="b", customer_id="c").SerializeToString(),
        b"",
    ]
    for value in bad_messages:
        traffic.messages.insert(rng.randrange(len(traffic.messages) + 1), (b"bad", value))
    for value in bad_walkins:
        traffic.walkins.insert(rng.randrange(len(traffic.walkins) + 1), (b"bad", value))
    traffic.bad = len(bad_messages) + len(bad_walkins)


def framed(
    records: list[tuple[bytes, bytes | None]], schema_id: int, indexes: tuple[int, ...]
) -> list[tuple[bytes, bytes | None]]:
    """The records framed as a Schema Registry serializer frames them (tombstones stay null)."""
    return [(k, None if v is None else frame(v, schema_id, indexes)) for k, v in records]
