"""The rule, hold, revisions, duplicates and late events, a batch at a time.

Modules: ``attribution.engine``, ``customer``, ``crowded``.
"""

from __future__ import annotations

import pickle

import pytest

from tests.attribution_support import (
    HOLD,
    LATENESS,
    ORIGIN,
    RULES,
    WINDOW,
    H,
    S,
    T,
    ids,
    msg,
    step,
    tick,
    walkin,
)
from tests.reference import expected_walkthroughs
from walkthroughs.attribution import (
    Rules,
    Shard,
    customer_key,
    finish,
    process_batch,
)
from walkthroughs.attribution.crowded import CrowdedCustomer
from walkthroughs.attribution.customer import CROWDED
from walkthroughs.wire.schema import (
    Attributed,
    Channel,
    DeadLetter,
    Reason,
)


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
