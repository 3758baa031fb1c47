"""Whatever the arrival order, duplication, timing and restarts, the final output is the rule.

For random event sets (few customers, small windows, so boundaries and ties are common), random
arrival orders with duplicates, random batches, processing times, timer firings, packing of
customers and snapshot/restore round trips, the latest walkthrough per walkin_id equals a
brute-force application of the rule, as long as retention covers the run (the contract's
exactness condition). Revisions only ever raise the attribution, at most one record per walk-in
per batch, and nothing is reported late. Every property runs on both forms of a customer: tuples
(``Customer``) and sorted indexes (``CrowdedCustomer``, forced by a threshold of 0 or 1).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import expected_walkthroughs
from walkthroughs.attribution import (
    Event,
    Output,
    Rules,
    Shard,
    customer,
    customer_key,
    finish,
    process_batch,
    shard_of,
)
from walkthroughs.wire.schema import Attributed, MessageEvent, Origin, WalkInEvent, Walkthrough

UNIT = 1_000_000_000  # event times are whole seconds apart, so boundaries and ties are frequent
BASE = 1_800_000_000 * UNIT
ORIGIN = Origin("t", 0, 0, None, b"")
# Pairs that collide if keys were joined with ":" naively.
CUSTOMERS = [("a:b", "c"), ("a", "b:c"), ("b1", "c1"), ("b1", "c2")]

customers = st.sampled_from(CUSTOMERS)
crowded_at = st.sampled_from([0, 1, 3, customer.CROWDED])  # past it, a customer is indexed


@contextmanager
def indexed_past(threshold: int) -> Iterator[None]:
    """Index customers past ``threshold`` events (``customer.CROWDED``) within the block."""
    saved = customer.CROWDED
    customer.CROWDED = threshold
    try:
        yield
    finally:
        customer.CROWDED = saved


times = st.integers(min_value=0, max_value=40).map(lambda s: BASE + s * UNIT)


@st.composite
def event_sets(draw: st.DrawFn) -> list[MessageEvent | WalkInEvent]:
    n_messages = draw(st.integers(0, 12))
    n_walkins = draw(st.integers(0, 8))
    events: list[MessageEvent | WalkInEvent] = []
    for i in range(n_messages):
        b, c = draw(customers)
        # Ids drawn from a small pool of suffixes so equal sent_at ties are decided by id.
        mid = draw(st.sampled_from(["m", "n", "mm", "z"])) + str(i)
        events.append(
            MessageEvent(
                mid, b, c, draw(times), draw(st.integers(0, 4)), draw(st.sampled_from(["", "camp"]))
            )
        )
    for i in range(n_walkins):
        b, c = draw(customers)
        events.append(
            WalkInEvent(f"w{i}", b, c, draw(st.sampled_from(["", "l1"])), draw(times), "2027-01-15")
        )
    return events


def batches_of(data: st.DataObject, items: list[MessageEvent | WalkInEvent]) -> list[list[Event]]:
    """Split the arrival order into consecutive batches of random sizes."""
    out: list[list[Event]] = []
    i = 0
    while i < len(items):
        n = data.draw(st.integers(1, 4))
        out.append([(e, ORIGIN) for e in items[i : i + n]])
        i += n
    return out


@settings(max_examples=3000, deadline=None)
@given(
    events=event_sets(),
    data=st.data(),
    window_s=st.integers(1, 15),
    hold_s=st.integers(0, 5),
    threshold=crowded_at,
)
def test_final_output_equals_the_rule(
    events: list[MessageEvent | WalkInEvent],
    data: st.DataObject,
    window_s: int,
    hold_s: int,
    threshold: int,
) -> None:
    rules = Rules(window_ns=window_s * UNIT, hold_ns=hold_s * UNIT, lateness_ns=10**6 * UNIT)
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    arrival = data.draw(st.permutations(events + duplicates))
    shards: dict[str, Shard] = {}
    latest: dict[str, Walkthrough] = {}
    now = 0

    def take(outputs: list[Output]) -> None:
        seen: set[str] = set()
        for out in outputs:
            assert isinstance(out, Attributed), f"nothing is late within retention: {out}"
            w = out.walkthrough
            assert w.walkin_id not in seen, "at most one record per walk-in per batch"
            seen.add(w.walkin_id)
            before = latest.get(w.walkin_id)
            if before is not None:
                assert out.revision
                assert (w.message_sent_at_ns, w.message_id) > (
                    before.message_sent_at_ns,
                    before.message_id,
                ), "revisions only go up"
            latest[w.walkin_id] = w

    with indexed_past(threshold):
        for batch in batches_of(data, arrival):
            now += data.draw(st.integers(0, 3)) * UNIT
            if data.draw(st.booleans()):  # a timer fires first
                for shard in shards.values():
                    take(process_batch(shard, (), now, rules))
            routed: dict[str, list[Event]] = {}
            for item in batch:
                routed.setdefault(shard_of(item[0].business_id, item[0].customer_id), []).append(
                    item
                )
            for key, items in routed.items():
                if key in shards and data.draw(st.integers(0, 9)) == 0:  # snapshot + restore
                    shards[key] = pickle.loads(pickle.dumps(shards[key]))
                    # ... by a process with another hold: deadlines follow the new setting
                    hold = data.draw(st.integers(0, 5)) * UNIT
                    rules = Rules(rules.window_ns, hold, rules.lateness_ns)
                if key not in shards:  # a small live limit makes customers pack between batches
                    shards[key] = Shard(live_limit=data.draw(st.integers(0, 3)))
                take(process_batch(shards[key], items, now, rules))
        for shard in shards.values():
            take(finish(shard, now, rules))

    assert latest == expected_walkthroughs(events, rules.window_ns)


@settings(max_examples=300, deadline=None)
@given(
    events=event_sets(),
    window_s=st.integers(1, 15),
    hold_s=st.integers(0, 5),
    lateness_s=st.integers(5, 20),
    threshold=crowded_at,
)
def test_state_is_discarded_once_retention_has_passed(
    events: list[MessageEvent | WalkInEvent],
    window_s: int,
    hold_s: int,
    lateness_s: int,
    threshold: int,
) -> None:
    rules = Rules(window_ns=window_s * UNIT, hold_ns=hold_s * UNIT, lateness_ns=lateness_s * UNIT)
    shard = Shard()
    with indexed_past(threshold):
        for i, event in enumerate(events):
            process_batch(shard, [(event, ORIGIN)], i * UNIT, rules)
        horizon = len(events) * UNIT + rules.window_ns + rules.lateness_ns * 2
        while (deadline := shard.next_deadline_ns()) is not None:
            assert deadline <= horizon
            process_batch(shard, (), deadline, rules)
    assert len(shard) == 0
    assert shard.next_deadline_ns() is None


@settings(max_examples=1000, deadline=None)
@given(
    events=event_sets(),
    data=st.data(),
    window_s=st.integers(1, 15),
    hold_s=st.integers(0, 5),
    threshold=crowded_at,
)
def test_first_decision_is_made_by_read_time_plus_hold(
    events: list[MessageEvent | WalkInEvent],
    data: st.DataObject,
    window_s: int,
    hold_s: int,
    threshold: int,
) -> None:
    """Firing timers exactly when ``next_deadline_ns`` asks, no first decision comes late."""
    rules = Rules(window_ns=window_s * UNIT, hold_ns=hold_s * UNIT, lateness_ns=10**6 * UNIT)
    arrival = data.draw(st.permutations(events))
    read_at = [
        sum(data.draw(st.lists(st.integers(0, 3), min_size=i + 1, max_size=i + 1))) * UNIT
        for i in range(len(arrival))
    ]
    read_at.sort()
    shard = Shard(live_limit=data.draw(st.integers(0, 3)))  # timers also fire on packed customers
    first_emitted: dict[str, int] = {}

    def take(outputs: list[Output], at: int) -> None:
        for out in outputs:
            assert isinstance(out, Attributed)
            first_emitted.setdefault(out.walkthrough.walkin_id, at)

    def fire_until(limit: int) -> None:
        while (deadline := shard.next_deadline_ns()) is not None and deadline <= limit:
            take(process_batch(shard, (), deadline, rules), deadline)

    with indexed_past(threshold):
        for event, now in zip(arrival, read_at, strict=True):
            fire_until(now)
            take(process_batch(shard, [(event, ORIGIN)], now, rules), now)
        fire_until(read_at[-1] + rules.hold_ns if read_at else 0)

    for i, walkin in enumerate(arrival):
        if not isinstance(walkin, WalkInEvent):
            continue
        known = [
            m for m, t in zip(arrival[:i], read_at, strict=False) if isinstance(m, MessageEvent)
        ]
        if expected_walkthroughs([*known, walkin], rules.window_ns):
            assert first_emitted[walkin.walkin_id] <= read_at[i] + rules.hold_ns


@settings(max_examples=500, deadline=None)
@given(events=event_sets(), data=st.data(), threshold=crowded_at)
def test_a_snapshot_is_the_shard_as_it_was_whatever_happens_after(
    events: list[MessageEvent | WalkInEvent], data: st.DataObject, threshold: int
) -> None:
    """Snapshots hold live customers by reference (copy-on-write): later events, timers and
    packing must not reach them."""
    rules = Rules(window_ns=5 * UNIT, hold_ns=2 * UNIT, lateness_ns=6 * UNIT)
    shard = Shard(live_limit=data.draw(st.integers(0, 3)))
    taken: list[tuple[object, bytes]] = []  # (snapshot, the shard pickled at that moment)
    with indexed_past(threshold):
        for i, event in enumerate(events):
            now = i * UNIT
            process_batch(shard, [(event, ORIGIN)], now, rules)
            action = data.draw(st.integers(0, 3))
            if action == 0:
                taken.append((shard.snapshot(), pickle.dumps(shard)))
            elif action == 1:
                process_batch(shard, (), now, rules)
        keys = {customer_key(e.business_id, e.customer_id) for e in events}
        for snapshot, at_the_time in taken:
            restored, expected = pickle.loads(pickle.dumps(snapshot)), pickle.loads(at_the_time)
            assert (len(restored), restored.retained()) == (len(expected), expected.retained())
            assert restored.next_deadline_ns() == expected.next_deadline_ns()
            for key in keys:
                got, want = restored.customer(key), expected.customer(key)
                assert (got is None) == (want is None)
                if got is not None and want is not None:
                    assert (got.records(), got.due_ns) == (want.records(), want.due_ns)
