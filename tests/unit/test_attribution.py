"""The attribution lifecycle, rule by rule, with an explicit processing time."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import pytest

from tests.reference import expected_walkthroughs
from walkthroughs.attribution import (
    STATE_SHARDS,
    Output,
    Rules,
    Shard,
    customer_hash,
    customer_key,
    finish,
    process_batch,
    shard_of,
    shard_of_hash,
    split_customer_key,
)
from walkthroughs.attribution.crowded import CrowdedCustomer
from walkthroughs.attribution.customer import CROWDED, Customer
from walkthroughs.attribution.records import M_CAMPAIGN, W_BEST, W_DECIDED, W_LOCATION, W_READ
from walkthroughs.attribution.snapshot import STATE_FORMAT, encode
from walkthroughs.config import resumed_window
from walkthroughs.errors import ConfigError
from walkthroughs.schema import (
    Attributed,
    Channel,
    DeadLetter,
    MessageEvent,
    Origin,
    Reason,
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


def test_first_decision_waits_for_hold_and_uses_messages_read_meanwhile() -> None:
    shard = Shard()
    assert step(shard, walkin(), 0) == []
    assert shard.next_deadline_ns() == HOLD
    assert step(shard, msg("m1", T - H), HOLD - 1) == []
    assert tick(shard, HOLD - 1) == []
    out = tick(shard, HOLD)
    assert ids(out) == [("w", "m1")]
    assert isinstance(out[0], Attributed)
    assert out[0] == Attributed(out[0].walkthrough, 0, revision=False, at_decision=True)
    assert out[0].walkthrough.business_id == "b"
    assert out[0].walkthrough.local_date == "2030-03-17"


def test_zero_hold_decides_on_arrival() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    assert ids(step(shard, walkin(), 0, Rules(WINDOW, 0, LATENESS))) == [("w", "m1")]


@pytest.mark.parametrize(
    ("sent_at", "attributed"),
    [(T, True), (T + 1, False), (T - WINDOW + 1, True), (T - WINDOW, False)],
    ids=["at-walkin", "after-walkin", "window-start-exclusive+1ns", "window-start"],
)
def test_window_is_open_at_start_closed_at_walkin(sent_at: int, attributed: bool) -> None:
    shard = Shard()
    step(shard, msg("m", sent_at), 0)
    step(shard, walkin(), 0)
    assert bool(ids(tick(shard, HOLD))) is attributed


def test_latest_message_wins_and_ties_go_to_the_greatest_id() -> None:
    shard = Shard()
    for mid, sent in [("a", T - 2 * H), ("b", T - H), ("c", T - H), ("B", T - H)]:
        step(shard, msg(mid, sent), 0)
    step(shard, walkin(), 0)
    assert ids(tick(shard, HOLD)) == [("w", "c")]


def test_later_message_revises_and_an_older_one_does_not() -> None:
    shard = Shard()
    step(shard, walkin(), 0)
    assert tick(shard, HOLD) == []  # decided: no walkthrough
    first = step(shard, msg("m1", T - 2 * H), H)
    assert ids(first) == [("w", "m1")]
    assert isinstance(first[0], Attributed)
    assert first[0].revision is False  # none -> some: the first walkthrough
    second = step(shard, msg("m2", T - H, Channel.SMS), 2 * H)
    assert ids(second) == [("w", "m2")]
    assert isinstance(second[0], Attributed)
    assert second[0].revision is True
    assert second[0].walkthrough.channel == Channel.SMS
    assert step(shard, msg("m0", T - 3 * H), 3 * H) == []


def test_revisions_within_one_batch_are_coalesced_to_the_latest() -> None:
    shard = Shard()
    step(shard, walkin(), 0)
    step(shard, msg("m1", T - 3 * H), HOLD)  # decided with m1
    burst = [(msg(f"m{i}", T - (3 - i) * H), ORIGIN) for i in (2, 3)]
    out = process_batch(shard, [*burst, (walkin("w2", T + H), ORIGIN)], H, RULES)
    assert ids(out) == [("w", "m3")]  # one record: the latest decision, not m2 then m3
    assert isinstance(out[0], Attributed)
    assert (out[0].revision, out[0].at_decision) == (True, False)


def test_a_first_decision_revised_in_the_same_batch_is_one_first_record() -> None:
    shard = Shard()
    step(shard, walkin(), 0)
    # At HOLD the first event makes the walk-in due: decided with m1; m2 then revises it.
    out = process_batch(
        shard, [(msg("m1", T - 2 * H), ORIGIN), (msg("m2", T - H), ORIGIN)], HOLD, RULES
    )
    assert ids(out) == [("w", "m2")]
    assert isinstance(out[0], Attributed)
    assert (out[0].revision, out[0].at_decision, out[0].read_at_ns) == (False, True, 0)


def test_a_burst_of_ascending_messages_emits_at_most_one_record_per_walkin_per_batch() -> None:
    """200k ascending messages for 50 decided walk-ins, in 20 batches: the outputs stay bounded
    by walk-ins x batches (each message improves every walk-in it credits), and the latest
    record per walk-in is still the rule."""
    walkins = [walkin(f"w{i}", T + i * H) for i in range(50)]
    messages = [msg(f"m{i:06d}", T - WINDOW + 1 + i * (WINDOW // 150_000)) for i in range(200_000)]
    shard = Shard()
    process_batch(shard, [(w, ORIGIN) for w in walkins], 0, RULES)
    tick(shard, HOLD)  # every walk-in decided, none attributed yet
    latest: dict[str, tuple[int, str]] = {}
    records = 0
    for b in range(20):
        out = process_batch(shard, [(m, ORIGIN) for m in messages[b::20]], HOLD + b * S, RULES)
        assert len(out) <= len(walkins)
        records += len(out)
        for o in out:
            assert isinstance(o, Attributed)
            latest[o.walkthrough.walkin_id] = (
                o.walkthrough.message_sent_at_ns,
                o.walkthrough.message_id,
            )
    assert records <= len(walkins) * 20
    expected = expected_walkthroughs([*messages, *walkins], WINDOW)
    assert latest == {w: (e.message_sent_at_ns, e.message_id) for w, e in expected.items()}
    assert len(expected) == len(walkins)


def test_a_hot_customer_is_indexed_and_keeps_deciding_by_the_rule() -> None:
    shard = Shard()
    process_batch(shard, [(msg(f"m{i}", T - i * S), ORIGIN) for i in range(CROWDED + 1)], 0, RULES)
    state = shard.customer(customer_key("b", "c"))
    assert isinstance(state, CrowdedCustomer)
    step(shard, walkin(), S)
    assert ids(tick(shard, S + HOLD)) == [("w", "m0")]
    assert ids(step(shard, msg("m0", T), 2 * S)) == []  # a duplicate, found by its id
    assert ids(step(shard, msg("z-best", T), 2 * S)) == [("w", "z-best")]


def test_hold_and_lateness_changed_across_a_restart_count_from_the_read_time() -> None:
    """State stores when a walk-in was read: a restart with other settings applies them to it
    (the trap was a read time rebuilt from the deadline minus the current hold)."""
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 10 * S)
    restored: Shard = pickle.loads(pickle.dumps(shard.snapshot()))
    longer = Rules(WINDOW, HOLD * 4, LATENESS // 2)
    assert tick(restored, 10 * S + HOLD, longer) == []  # the old timer fires: not due any more
    out = tick(restored, 10 * S + HOLD * 4, longer)
    assert ids(out) == [("w", "m1")]
    assert isinstance(out[0], Attributed)
    assert out[0].read_at_ns == 10 * S  # decision latency is measured from the real read
    tick(restored, 10 * S + LATENESS // 2, longer)
    state = restored.customer(customer_key("b", "c"))
    assert state is not None
    assert state.records()[1] == ()  # let go after the new allowed lateness, from its read


@pytest.mark.parametrize("new_hold", [HOLD * 10, HOLD // 10], ids=["longer", "shorter"])
def test_end_of_input_after_a_restart_with_another_hold_still_decides_everything(
    new_hold: int,
) -> None:
    """A longer hold reschedules pending walk-ins past the last decision scheduled before the
    restart: end of input must still find them (a crash test caught this on the real stack)."""
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    restored: Shard = pickle.loads(pickle.dumps(shard.snapshot()))
    rules = Rules(WINDOW, new_hold, LATENESS)
    ticked = tick(restored, HOLD, rules)  # the restored timer fires: due under the new hold?
    assert ids([*ticked, *finish(restored, HOLD, rules)]) == [("w", "m1")]


def test_duplicates_are_ignored() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    assert ids(tick(shard, HOLD)) == [("w", "m1")]
    assert step(shard, msg("m1", T - H), H) == []
    assert step(shard, walkin(), H) == []
    assert tick(shard, H + HOLD) == []


def test_message_that_would_credit_a_walkin_let_go_is_reported_late() -> None:
    shard = Shard()
    step(shard, walkin(), 0)
    tick(shard, LATENESS)  # the walk-in is let go, a ghost remains
    late_origin = ORIGIN._replace(topic="zr-messages", offset=7)
    out = step(shard, msg("m1", T - H), LATENESS + S, origin=late_origin)
    assert len(out) == 1
    assert isinstance(out[0], DeadLetter)
    assert out[0].reason is Reason.LATE
    assert out[0].origin == late_origin
    assert out[0].error.startswith("late: message 'm1' would have credited walk-in(s) 'w'")
    # A message outside the let-go walk-in's window is not late.
    assert step(shard, msg("m2", T + H), LATENESS + S) == []


def test_duplicate_of_a_walkin_let_go_is_still_recognised() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    tick(shard, LATENESS)
    assert step(shard, walkin(), LATENESS + S) == []


def test_walkin_after_its_message_was_let_go_is_reported_late() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin("w0", T + 9 * 24 * H), WINDOW)  # keeps the key alive
    tick(shard, WINDOW + LATENESS)  # m1 is let go
    out = step(shard, walkin("w1", T), WINDOW + LATENESS + S)
    assert [(o.reason, o.error[:40]) for o in out if isinstance(o, DeadLetter)] == [
        (Reason.LATE, "late: walk-in 'w1' arrived after message")
    ]


def test_key_is_discarded_when_nothing_is_left() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    tick(shard, LATENESS + WINDOW)
    assert len(shard) == 0
    assert shard.next_deadline_ns() is None


def test_finish_makes_pending_first_decisions_at_end_of_input() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    assert ids(finish(shard, 1, RULES)) == [("w", "m1")]
    assert tick(shard, HOLD) == []


def test_state_survives_a_pickle_round_trip_with_its_timers() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    restored = pickle.loads(pickle.dumps(shard))
    assert restored.next_deadline_ns() == HOLD
    assert ids(tick(restored, HOLD)) == [("w", "m1")]


def test_a_shard_resumed_under_another_window_refuses_and_names_the_setting() -> None:
    shard = Shard(window_ns=WINDOW)
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    stored = Shard.resumed(pickle.loads(pickle.dumps(shard.snapshot())))
    assert stored.window_ns == WINDOW  # the snapshot keeps the window
    with pytest.raises(ConfigError, match=r"WALKTHROUGHS_ATTRIBUTION_WINDOW is 3d.* under 7d"):
        resumed_window(stored.window_ns, 3 * 24 * H)
    assert resumed_window(stored.window_ns, WINDOW) == WINDOW
    assert ids(tick(stored, HOLD)) == [("w", "m1")]
    # a shard that never said its window (benches, the in-memory engine) is taken as it is
    assert resumed_window(Shard.resumed(pickle.loads(pickle.dumps(Shard()))).window_ns, WINDOW) == (
        WINDOW
    )


def test_ids_with_separators_never_share_state() -> None:
    shard = Shard()
    step(shard, MessageEvent("m", "a:b", "c", T - H, 1, ""), 0)
    step(shard, WalkInEvent("w", "a", "b:c", "", T, "2030-03-17"), 0)
    assert tick(shard, HOLD) == []
    assert len(shard) == 2


def test_shard_keys_are_bounded_and_stable() -> None:
    keys = {shard_of(f"b{i}", f"c{i}") for i in range(20_000)}
    assert len(keys) == STATE_SHARDS
    assert shard_of("business", "customer") == "r43-1678"  # pinned: part of the recovery format


def test_the_claim_step_places_a_customer_by_its_owner_hash_as_shard_of_does() -> None:
    pairs = [(f"b{i % 37}", f"c{i}") for i in range(5_000)] + [("", "\x00"), ("é", "ü" * 300)]
    for business, customer in pairs:
        assert shard_of_hash(customer_hash(business, customer)) == shard_of(business, customer)


@pytest.mark.parametrize(
    ("window", "hold", "lateness"),
    [(0, 0, 0), (1, 2, 1), (1, -1, 1)],
    ids=["no-window", "hold-over-lateness", "negative-hold"],
)
def test_rules_reject_impossible_timings(window: int, hold: int, lateness: int) -> None:
    with pytest.raises(ValueError, match=r"must be positive|hold"):
        Rules(window, hold, lateness)


def test_every_walkin_field_survives_a_pickle_round_trip() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 5)
    before = _customer(shard, "b", "c").records()[1][0]
    after = _customer(Shard.restore(shard.snapshot().blob()), "b", "c").records()[1][0]
    assert after == before
    assert after[W_BEST] is not None
    assert (after[W_READ], after[W_DECIDED], after[W_LOCATION]) == (5, False, "loc")


def test_a_snapshot_of_another_state_format_is_refused_with_a_reason() -> None:
    blob = encode((STATE_FORMAT + 1, {}, 0, 0, 0, 0))
    with pytest.raises(ValueError, match=f"state format {STATE_FORMAT + 1}"):
        Shard.restore(blob)


@pytest.mark.parametrize(
    ("business", "customer"), [("a:b", "c"), ("a", "b:c"), ("", "x"), ("1:", ""), ("é", "😀")]
)
def test_customer_keys_split_back_into_their_ids(business: str, customer: str) -> None:
    assert split_customer_key(customer_key(business, customer)) == (business, customer)


def test_a_packed_customer_keeps_best_the_stored_message_and_its_timer() -> None:
    shard = Shard(live_limit=0)  # packs every customer after every batch
    step(shard, MessageEvent("m1", "b", "c", T - H, 1, "campaign"), 0)
    step(shard, WalkInEvent("w", "b", "c", "loc", T, "2030-03-17"), 0)
    unpacked = _customer(shard, "b", "c")
    messages, walkins, _, _ = unpacked.records()
    assert walkins[0][W_BEST] is messages[0]
    assert messages[0][M_CAMPAIGN] == "campaign"
    assert unpacked.due_ns == HOLD
    assert shard.retained() == (1, 1)
    assert ids(tick(shard, HOLD)) == [("w", "m1")]  # the timer fires on a packed one


def test_a_shard_packs_its_least_recently_used_customers_down_to_half_its_limit() -> None:
    shard = Shard(live_limit=4)
    for c in ("c1", "c2", "c3"):
        step(shard, MessageEvent(f"m-{c}", "b", c, T - H, 1, ""), 0)

    def live(c: str) -> bool:  # a live customer is the same object each time it is looked at
        key = customer_key("b", c)
        return shard.customer(key) is shard.customer(key)

    assert [live(c) for c in ("c1", "c2", "c3")] == [True, True, True]
    pickle.dumps(shard)  # a plain pickle leaves them live
    shard.snapshot()  # so does a snapshot of a small shard
    assert [live(c) for c in ("c1", "c2", "c3")] == [True, True, True]
    shard.live_limit = 2
    shard.end_batch()
    assert [live(c) for c in ("c1", "c2", "c3")] == [False, False, True]
    assert (len(shard), shard.retained()) == (3, (3, 0))
    snapshot = shard.snapshot()  # a large shard's snapshot packs them all, in place
    assert [live(c) for c in ("c1", "c2", "c3")] == [False, False, False]
    assert Shard.restore(snapshot.blob()).retained() == (3, 0)


def test_a_hot_customer_stays_live_through_snapshots_and_packing() -> None:
    shard = Shard(live_limit=2)
    hot = [(msg(f"m{i}", T - i * S), ORIGIN) for i in range(CROWDED + 1)]
    process_batch(shard, hot, 0, RULES)
    for c in ("c1", "c2", "c3"):
        step(shard, MessageEvent(f"m-{c}", "b", c, T - H, 1, ""), 0)
    step(shard, msg("again", T), 0)  # touched last: the most recently used
    shard.snapshot()
    key = customer_key("b", "c")
    assert isinstance(shard.customer(key), CrowdedCustomer)
    assert shard.customer(key) is shard.customer(key)
    assert shard.retained() == (CROWDED + 5, 0)
    restored = Shard.restore(shard.snapshot().blob())
    assert isinstance(restored.customer(key), CrowdedCustomer)  # indexed again when unpacked
    assert restored.retained() == (CROWDED + 5, 0)


def _customer(shard: Shard, business: str, customer: str) -> Customer | CrowdedCustomer:
    state = shard.customer(customer_key(business, customer))
    assert state is not None
    return state


def test_a_snapshot_is_compressed() -> None:
    shard = Shard()
    for c in range(50):
        step(shard, MessageEvent(f"m{c}", "business", f"c{c}", T - H, 1, "camp"), 0)
    blob = shard.snapshot().blob()
    assert blob[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert len(blob) * 3 < len(pickle.dumps(shard))
    assert Shard.restore(blob).retained() == (50, 0)


def test_finish_unpacks_only_customers_that_may_have_a_pending_walkin() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)  # customer c: a walk-in pending
    step(shard, walkin(), 0)
    step(shard, MessageEvent("m2", "b", "other", T - H, 1, ""), 0)  # nothing to do
    restored = Shard.restore(shard.snapshot().blob())
    assert ids(finish(restored, 1, RULES)) == [("w", "m1")]
    other = customer_key("b", "other")
    assert restored.customer(other) is not restored.customer(other)  # still packed


def test_a_snapshot_is_what_the_shard_was_and_unpickles_as_a_shard() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    snapshot = shard.snapshot()
    step(shard, walkin(), 0)  # after the snapshot: not in it
    step(shard, msg("m2", T - H), 0)
    restored = pickle.loads(pickle.dumps(snapshot))  # what Bytewax stores and resumes from
    assert isinstance(restored, Shard)
    assert restored.retained() == (1, 0)
    assert shard.retained() == (2, 1)


def test_a_resumed_state_key_is_a_shard() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    assert Shard.resumed(pickle.loads(pickle.dumps(shard.snapshot()))).retained() == (1, 0)
    with pytest.raises(TypeError, match="is a str"):
        Shard.resumed("not a shard")
