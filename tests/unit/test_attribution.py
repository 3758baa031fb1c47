"""The attribution lifecycle, rule by rule, with an explicit processing time."""

from __future__ import annotations

import pickle

import pytest

from walkthroughs.attribution import (
    M_CAMPAIGN,
    STATE_FORMAT,
    STATE_SHARDS,
    W_BEST,
    W_DECIDED,
    W_DUE,
    W_LOCATION,
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
from walkthroughs.sharing import shared

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
    before = shard.customers[customer_key("b", "c")].walkins[0]
    after = Shard.restore(shard.dump()).customers[customer_key("b", "c")].walkins[0]
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


def test_a_restored_shard_shares_repeated_strings_and_keeps_best_the_stored_message() -> None:
    shard = Shard()
    campaign, location = "".join(["camp", "aign"]), "".join(["lo", "c"])  # not interned
    shard.apply(MessageEvent("m1", "b", "c", T - H, 1, campaign), ORIGIN, 0, RULES)
    shard.apply(WalkInEvent("w", "b", "c", location, T, "2030-03-17"), ORIGIN, 0, RULES)
    restored = Shard.restore(shard.dump()).customers[customer_key("b", "c")]
    assert restored.walkins[0][W_BEST] is restored.messages[0]
    assert restored.messages[0][M_CAMPAIGN] is shared("campaign")
    assert restored.walkins[0][W_LOCATION] is shared("loc")
