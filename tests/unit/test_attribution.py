"""The attribution lifecycle, rule by rule, with an explicit processing time."""

from __future__ import annotations

import pickle

import pytest

from walkthroughs import attribution
from walkthroughs.attribution import (
    M_CAMPAIGN,
    STATE_FORMAT,
    STATE_SHARDS,
    W_BEST,
    W_DECIDED,
    W_DUE,
    W_LOCATION,
    CustomerState,
    Rules,
    Shard,
    customer_key,
    shard_of,
    split_customer_key,
)
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


def ids(outputs: list[object]) -> list[tuple[str, str]]:
    return [
        (o.walkthrough.walkin_id, o.walkthrough.message_id)
        for o in outputs
        if isinstance(o, Attributed)
    ]


def test_first_decision_waits_for_hold_and_uses_messages_read_meanwhile() -> None:
    shard = Shard()
    assert shard.apply(walkin(), ORIGIN, 0, RULES) == []
    assert shard.next_deadline_ns() == HOLD
    assert shard.apply(msg("m1", T - H), ORIGIN, HOLD - 1, RULES) == []
    assert shard.expire(HOLD - 1, RULES) == []
    out = shard.expire(HOLD, RULES)
    assert ids(out) == [("w", "m1")]
    assert out[0] == Attributed(out[0].walkthrough, 0, revision=False, at_decision=True)
    assert out[0].walkthrough.business_id == "b"
    assert out[0].walkthrough.local_date == "2030-03-17"


def test_zero_hold_decides_on_arrival() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    assert ids(shard.apply(walkin(), ORIGIN, 0, Rules(WINDOW, 0, LATENESS))) == [("w", "m1")]


@pytest.mark.parametrize(
    ("sent_at", "attributed"),
    [(T, True), (T + 1, False), (T - WINDOW + 1, True), (T - WINDOW, False)],
    ids=["at-walkin", "after-walkin", "window-start-exclusive+1ns", "window-start"],
)
def test_window_is_open_at_start_closed_at_walkin(sent_at: int, attributed: bool) -> None:
    shard = Shard()
    shard.apply(msg("m", sent_at), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    assert bool(ids(shard.expire(HOLD, RULES))) is attributed


def test_latest_message_wins_and_ties_go_to_the_greatest_id() -> None:
    shard = Shard()
    for mid, sent in [("a", T - 2 * H), ("b", T - H), ("c", T - H), ("B", T - H)]:
        shard.apply(msg(mid, sent), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    assert ids(shard.expire(HOLD, RULES)) == [("w", "c")]


def test_later_message_revises_and_an_older_one_does_not() -> None:
    shard = Shard()
    shard.apply(walkin(), ORIGIN, 0, RULES)
    assert shard.expire(HOLD, RULES) == []  # decided: no walkthrough
    first = shard.apply(msg("m1", T - 2 * H), ORIGIN, H, RULES)
    assert ids(first) == [("w", "m1")]
    assert first[0].revision is False  # none -> some: the first walkthrough
    second = shard.apply(msg("m2", T - H, Channel.SMS), ORIGIN, 2 * H, RULES)
    assert ids(second) == [("w", "m2")]
    assert second[0].revision is True
    assert second[0].walkthrough.channel == Channel.SMS
    assert shard.apply(msg("m0", T - 3 * H), ORIGIN, 3 * H, RULES) == []


def test_duplicates_are_ignored() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    assert ids(shard.expire(HOLD, RULES)) == [("w", "m1")]
    assert shard.apply(msg("m1", T - H), ORIGIN, H, RULES) == []
    assert shard.apply(walkin(), ORIGIN, H, RULES) == []
    assert shard.expire(H + HOLD, RULES) == []


def test_message_that_would_credit_a_walkin_let_go_is_reported_late() -> None:
    shard = Shard()
    shard.apply(walkin(), ORIGIN, 0, RULES)
    shard.expire(LATENESS, RULES)  # the walk-in is let go, a ghost remains
    late_origin = ORIGIN._replace(topic="zr-messages", offset=7)
    out = shard.apply(msg("m1", T - H), late_origin, LATENESS + S, RULES)
    assert len(out) == 1
    assert isinstance(out[0], DeadLetter)
    assert out[0].reason is Reason.LATE
    assert out[0].origin == late_origin
    assert out[0].error.startswith("late: message 'm1' would have credited walk-in(s) 'w'")
    # A message outside the let-go walk-in's window is not late.
    assert shard.apply(msg("m2", T + H), ORIGIN, LATENESS + S, RULES) == []


def test_duplicate_of_a_walkin_let_go_is_still_recognised() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    shard.expire(LATENESS, RULES)
    assert shard.apply(walkin(), ORIGIN, LATENESS + S, RULES) == []


def test_walkin_after_its_message_was_let_go_is_reported_late() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin("w0", T + 9 * 24 * H), ORIGIN, WINDOW, RULES)  # keeps the key alive
    shard.expire(WINDOW + LATENESS, RULES)  # m1 is let go
    out = shard.apply(walkin("w1", T), ORIGIN, WINDOW + LATENESS + S, RULES)
    assert [(o.reason, o.error[:40]) for o in out if isinstance(o, DeadLetter)] == [
        (Reason.LATE, "late: walk-in 'w1' arrived after message")
    ]


def test_key_is_discarded_when_nothing_is_left() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    shard.expire(LATENESS + WINDOW, RULES)
    assert len(shard) == 0
    assert shard.next_deadline_ns() is None


def test_decide_all_makes_pending_first_decisions_at_end_of_input() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    assert ids(shard.decide_all(1, RULES)) == [("w", "m1")]
    assert shard.expire(HOLD, RULES) == []


def test_state_survives_a_pickle_round_trip_with_its_timers() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 0, RULES)
    restored = pickle.loads(pickle.dumps(shard))
    assert restored.next_deadline_ns() == HOLD
    assert ids(restored.expire(HOLD, RULES)) == [("w", "m1")]


def test_ids_with_separators_never_share_state() -> None:
    shard = Shard()
    shard.apply(MessageEvent("m", "a:b", "c", T - H, 1, ""), ORIGIN, 0, RULES)
    shard.apply(WalkInEvent("w", "a", "b:c", "", T, "2030-03-17"), ORIGIN, 0, RULES)
    assert shard.expire(HOLD, RULES) == []
    assert len(shard) == 2


def test_shard_keys_are_bounded_and_stable() -> None:
    keys = {shard_of(f"b{i}", f"c{i}") for i in range(20_000)}
    assert len(keys) == STATE_SHARDS
    assert shard_of("business", "customer") == "0731"  # pinned: part of the recovery format


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
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    shard.apply(walkin(), ORIGIN, 5, RULES)
    before = _customer(shard, "b", "c").walkins[0]
    after = _customer(Shard.restore(shard.dump()), "b", "c").walkins[0]
    assert after == before
    assert after[W_BEST] is not None
    assert (after[W_DUE], after[W_DECIDED], after[W_LOCATION]) == (5 + HOLD, False, "loc")


class _ShardOfAnotherFormat:
    def __reduce__(self) -> tuple[object, ...]:
        return Shard.__new__, (Shard,), (STATE_FORMAT + 1, [])


def test_a_snapshot_of_another_state_format_is_refused_with_a_reason() -> None:
    blob = pickle.dumps(_ShardOfAnotherFormat())
    with pytest.raises(ValueError, match=f"state format {STATE_FORMAT + 1}"):
        Shard.restore(blob)


@pytest.mark.parametrize(
    ("business", "customer"), [("a:b", "c"), ("a", "b:c"), ("", "x"), ("1:", ""), ("é", "😀")]
)
def test_customer_keys_split_back_into_their_ids(business: str, customer: str) -> None:
    assert split_customer_key(customer_key(business, customer)) == (business, customer)


def test_a_packed_customer_keeps_best_the_stored_message_and_its_timer() -> None:
    shard = Shard()
    shard.apply(MessageEvent("m1", "b", "c", T - H, 1, "campaign"), ORIGIN, 0, RULES)
    shard.apply(WalkInEvent("w", "b", "c", "loc", T, "2030-03-17"), ORIGIN, 0, RULES)
    shard.pack()
    unpacked = _customer(shard, "b", "c")
    assert unpacked.walkins[0][W_BEST] is unpacked.messages[0]
    assert unpacked.messages[0][M_CAMPAIGN] == "campaign"
    assert unpacked.due_ns == HOLD
    assert shard.retained() == (1, 1)
    assert ids(shard.expire(HOLD, RULES)) == [("w", "m1")]  # the timer fires on a packed one


def test_packing_packs_the_longest_live_customers_down_to_half_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shard = Shard()
    for c in ("c1", "c2", "c3"):
        shard.apply(MessageEvent(f"m-{c}", "b", c, T - H, 1, ""), ORIGIN, 0, RULES)

    def live(c: str) -> bool:  # a live customer is the same object each time it is looked at
        key = customer_key("b", c)
        return shard.customer(key) is shard.customer(key)

    shard.pack(keep=3)
    assert [live(c) for c in ("c1", "c2", "c3")] == [True, True, True]
    pickle.dumps(shard)  # a plain pickle leaves them live
    shard.pack(keep=2)
    assert [live(c) for c in ("c1", "c2", "c3")] == [False, False, True]
    assert (len(shard), shard.retained()) == (3, (3, 0))
    shard.dump()  # a snapshot of a small shard leaves them live...
    assert live("c3")
    monkeypatch.setattr(attribution, "LIVE_CUSTOMERS", 2)
    snapshot = shard.snapshot()  # ... a large shard's snapshot packs them all, in place
    assert [live(c) for c in ("c1", "c2", "c3")] == [False, False, False]
    assert Shard.restore(snapshot.blob()).retained() == (3, 0)


class _ShardOfTheUnpackedFormat:
    """A snapshot as release 2 wrote it: (key, messages, walkins, ghosts, forgotten) rows."""

    def __reduce__(self) -> tuple[object, ...]:
        message = (T - H, "m1", 1, "", LATENESS + WINDOW)
        walkin = ("w", T, "loc", "2030-03-17", message, HOLD, False)
        rows = [(customer_key("b", "c"), (message,), (walkin,), (), None)]
        return Shard.__new__, (Shard,), (2, rows)


def test_a_snapshot_of_the_unpacked_format_is_read_with_its_timers() -> None:
    shard = Shard.restore(pickle.dumps(_ShardOfTheUnpackedFormat()))
    assert (len(shard), shard.retained(), shard.next_deadline_ns()) == (1, (1, 1), HOLD)
    assert ids(shard.expire(HOLD, RULES)) == [("w", "m1")]


def _customer(shard: Shard, business: str, customer: str) -> CustomerState:
    state = shard.customer(customer_key(business, customer))
    assert state is not None
    return state


def test_a_snapshot_is_compressed() -> None:
    shard = Shard()
    for c in range(50):
        shard.apply(MessageEvent(f"m{c}", "business", f"c{c}", T - H, 1, "camp"), ORIGIN, 0, RULES)
    blob = shard.dump()
    assert blob[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert len(blob) * 3 < len(pickle.dumps(shard))
    assert Shard.restore(blob).retained() == (50, 0)


def test_decide_all_unpacks_only_customers_that_may_have_a_pending_walkin() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)  # customer c: a walk-in pending
    shard.apply(walkin(), ORIGIN, 0, RULES)
    shard.apply(MessageEvent("m2", "b", "other", T - H, 1, ""), ORIGIN, 0, RULES)  # nothing to do
    restored = Shard.restore(shard.dump())
    assert ids(restored.decide_all(1, RULES)) == [("w", "m1")]
    other = customer_key("b", "other")
    assert restored.customer(other) is not restored.customer(other)  # still packed


def test_a_snapshot_is_what_the_shard_was_and_unpickles_as_a_shard() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    snapshot = shard.snapshot()
    shard.apply(walkin(), ORIGIN, 0, RULES)  # after the snapshot: not in it
    shard.apply(msg("m2", T - H), ORIGIN, 0, RULES)
    restored = pickle.loads(pickle.dumps(snapshot))  # what Bytewax stores and resumes from
    assert isinstance(restored, Shard)
    assert restored.retained() == (1, 0)
    assert shard.retained() == (2, 1)


def test_a_resumed_state_key_is_a_shard_or_the_bytes_of_the_previous_release() -> None:
    shard = Shard()
    shard.apply(msg("m1", T - H), ORIGIN, 0, RULES)
    assert Shard.resumed(pickle.loads(pickle.dumps(shard.snapshot()))).retained() == (1, 0)
    assert Shard.resumed(shard.dump()).retained() == (1, 0)
    with pytest.raises(TypeError, match="is a str"):
        Shard.resumed("not a shard")
