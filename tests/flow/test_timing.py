"""Early, then exact: the first decision after hold, revisions, and decisions at end of input.

Processing time is the script's (``At``); ``Until`` keeps the input open with empty batches
while waiting for an output, so "emitted before end of input" is observed, not assumed.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

from tests.flow.driver import (
    FLUSH,
    HOLD,
    MINUTE,
    T0,
    At,
    Do,
    FlowDriver,
    Flush,
    S,
    Step,
    Until,
    mongo_key,
    rank,
)


def test_first_decision_waits_for_hold_then_comes_while_the_input_is_still_open(
    driver: FlowDriver,
) -> None:
    """Nothing before read + hold; by read + hold + one flush interval, without any EOF."""
    inputs = driver.inputs
    seen: dict[str, int] = {}

    def look(when: str) -> Do:
        def count() -> None:
            seen[when] = len(driver.walkthroughs)

        return Do(count)

    steps: list[Step] = [
        inputs.message("m1", "b", "c", T0 - MINUTE),
        inputs.walkin("w1", "b", "c", T0),  # read at T0
        At(T0 + HOLD - 1),
        Flush(),
        Flush(),
        look("just before hold"),
        At(T0 + HOLD + FLUSH),
        Until(lambda: driver.has("w1"), "decided"),
        look("input still open"),
        inputs.message("m-other", "b", "c2", T0),  # the input goes on after the decision
    ]

    driver.run(steps)

    assert seen == {"just before hold": 0, "input still open": 1}
    [first] = driver.records_of("w1")
    assert (first.revision, first.at_decision, first.read_at_ns) == (False, True, T0)
    assert driver.latest() == inputs.expected()
    assert [(key, w) for key, w in driver.mongo] == [(mongo_key("b"), first.walkthrough)]


def test_revisions_reuse_the_walkin_id_and_the_latest_record_is_the_rule(
    driver: FlowDriver,
) -> None:
    """Each better message read later emits the walk-in again; worse ones emit nothing.

    Every improving message comes in a batch of its own, and the clock moves a flush interval
    past it, so the test holds whether revisions are emitted per message or coalesced per batch
    or flush tick. Only there is "at most one record per walk-in per batch" asserted.
    """
    inputs = driver.inputs
    t = T0 + HOLD + FLUSH
    steps: list[Step] = [
        inputs.message("m1", "b", "c", T0 - 60 * S),
        inputs.walkin("w1", "b", "c", T0),
        inputs.walkin("w2", "b", "c2", T0),  # nothing credits it yet
        At(t),
        Until(lambda: driver.has("w1"), "decided"),
        Flush(),  # w2 is decided too (nothing)
    ]
    improving = [  # (message, its customer, the walk-in it improves, sent_at - T0 in s)
        ("m2", "c", "w1", -30),  # more recent than m1
        ("m3", "c", "w1", -10),
        ("m3z", "c", "w1", -10),  # a tie with m3: the greater id wins
        ("n2", "c2", "w2", -5),  # none -> some for w2
    ]
    for i, (message_id, customer, walkin_id, sent_s) in enumerate(improving, start=1):
        steps += [
            inputs.message(message_id, "b", customer, T0 + sent_s * S),
            At(t + i * FLUSH),
            Until(partial(driver.has, walkin_id, message_id), f"revised by {message_id}"),
        ]
    steps += [
        inputs.message("m-older", "b", "c", T0 - 45 * S),  # beats nothing
        inputs.message("m-after", "b", "c", T0 + S),  # sent after the walk-in: not in its window
        Flush(),
    ]

    driver.run(steps)

    w1 = driver.records_of("w1")
    assert [a.walkthrough.message_id for a in w1] == ["m1", "m2", "m3", "m3z"]
    assert [a.revision for a in w1] == [False, True, True, True]
    assert [rank(a.walkthrough) for a in w1] == sorted({rank(a.walkthrough) for a in w1})
    [w2] = driver.records_of("w2")  # its first decision was "nothing": this is its first record
    assert (w2.walkthrough.message_id, w2.revision, w2.at_decision) == ("n2", False, False)
    for batch in driver.batches():
        assert max(Counter(a.walkthrough.walkin_id for a in batch).values(), default=0) <= 1
    expected = inputs.expected()
    assert driver.latest() == expected
    assert driver.mongo_documents() == expected


def test_end_of_input_makes_every_pending_first_decision(driver: FlowDriver) -> None:
    """Bounded mode: the input ends before any hold passed, and every walk-in is decided."""
    inputs = driver.inputs
    before_eof: list[int] = []
    steps: list[Step] = [
        inputs.message("m1", "b", "c1", T0 - MINUTE),
        inputs.walkin("w1", "b", "c1", T0),
        inputs.walkin("w2", "b", "c2", T0),  # nothing credits it
        inputs.walkin("w3", "b", "c3", T0),
        inputs.message("m3", "b", "c3", T0 - S),  # read after its walk-in, before any decision
        At(T0 + HOLD - 1),
        Flush(),
        Do(lambda: before_eof.append(len(driver.walkthroughs))),
    ]

    driver.run(steps)

    assert before_eof == [0]
    expected = inputs.expected()
    assert set(expected) == {"w1", "w3"}
    assert driver.latest() == expected
    assert driver.mongo_documents() == expected
    assert all(a.at_decision and not a.revision for _, a in driver.walkthroughs)
    assert len(driver.walkthroughs) == 2
