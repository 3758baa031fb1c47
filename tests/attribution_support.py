"""What the attribution tests share: times, rules, events, and one-batch steps."""

from __future__ import annotations

from collections.abc import Sequence

from walkthroughs.attribution import (
    Output,
    Rules,
    Shard,
    customer_key,
    process_batch,
)
from walkthroughs.attribution.crowded import CrowdedCustomer
from walkthroughs.attribution.customer import Customer
from walkthroughs.wire.schema import (
    Attributed,
    Channel,
    MessageEvent,
    Origin,
    WalkInEvent,
)

S = 1_000_000_000
H = 3600 * S
T = 1_900_000_000 * S  # event time of the walk-ins
WINDOW, HOLD, LATENESS = 7 * 24 * H, 30 * S, 24 * H
RULES = Rules(WINDOW, HOLD, LATENESS)
ORIGIN = Origin("walkins", 2, 41, b"k", b"v")


def msg(mid: str, sent_at: int, channel: int = Channel.EMAIL) -> MessageEvent:
    return MessageEvent(mid, "b", "c", sent_at, channel, "camp")


def walkin(wid: str = "w", started_at: int = T) -> WalkInEvent:
    return WalkInEvent(wid, "b", "c", "loc", started_at, "2030-03-17")


def ids(outputs: Sequence[object]) -> list[tuple[str, str]]:
    return [
        (o.walkthrough.walkin_id, o.walkthrough.message_id)
        for o in outputs
        if isinstance(o, Attributed)
    ]


def step(
    shard: Shard,
    event: MessageEvent | WalkInEvent,
    now: int,
    rules: Rules = RULES,
    origin: Origin = ORIGIN,
) -> list[Output]:
    """One event read at ``now``, as a batch of its own."""
    return process_batch(shard, [(event, origin)], now, rules)


def tick(shard: Shard, now: int, rules: Rules = RULES) -> list[Output]:
    """A timer tick at ``now``: a batch without events."""
    return process_batch(shard, (), now, rules)


def customer_state(shard: Shard, business: str, customer: str) -> Customer | CrowdedCustomer:
    state = shard.customer(customer_key(business, customer))
    assert state is not None
    return state
