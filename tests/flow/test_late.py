"""``split_late``: events that came after the state they needed was let go reach the DLQ sink.

Processing time moves between batches (the script's ``At`` steps): past allowed lateness a
walk-in is let go, past window + allowed lateness a message is. What the service still can, it
applies; what it can tell came too late, it reports with reason ``late``.
"""

from __future__ import annotations

from tests.flow.driver import (
    FLUSH,
    HOUR,
    LATENESS,
    MINUTE,
    T0,
    WINDOW,
    At,
    FlowDriver,
    Flush,
    Step,
    state_key,
)
from walkthroughs.wire.schema import Reason


def test_message_for_a_walkin_already_let_go_is_late_and_credits_nothing(
    driver: FlowDriver,
) -> None:
    """A message read past the walk-in's allowed lateness: DLQ ``late``, no walkthrough.

    The same customer's message read just within allowed lateness still counts, and the late
    message itself is kept: a walk-in read afterwards is attributed to it.
    """
    inputs = driver.inputs
    gone = inputs.walkin("w-gone", "b", "c", T0)
    late = inputs.message("m-late", "b", "c", T0 - MINUTE)  # would credit w-gone
    steps: list[Step] = [
        gone,
        inputs.walkin("w-kept", "b", "c2", T0),
        At(T0 + LATENESS - MINUTE),
        inputs.message("m-in-time", "b", "c2", T0 - MINUTE),  # within lateness: counts
        At(T0 + LATENESS + FLUSH),
        Flush(),  # w-gone's timer runs: it is let go
        late,
        inputs.walkin("w-after", "b", "c", T0 + HOUR),  # read now: m-late applies to it
    ]

    driver.run(steps)

    assert driver.reasons() == [(late, Reason.LATE)]
    key, dead = driver.dead_letters[0]
    assert dead.error.startswith("late: message 'm-late' would have credited walk-in(s) 'w-gone'")
    assert key == state_key("b", "c")  # found by the customer's state, not by decode
    assert driver.records_of("w-gone") == []
    assert "w-gone" not in driver.mongo_documents()
    expected = inputs.expected()
    del expected["w-gone"]  # the rule would credit it; the service let it go before m-late came
    assert driver.latest() == expected
    assert {w: e.message_id for w, e in expected.items()} == {
        "w-kept": "m-in-time",
        "w-after": "m-late",
    }


def test_walkin_whose_message_was_let_go_is_late_and_gets_what_is_left(driver: FlowDriver) -> None:
    """A walk-in read after the message it needed was let go: DLQ ``late``, and attributed.

    The key stays alive (another message is retained), so it remembers the greatest message it
    let go and can tell; the walk-in is attributed to the best message still retained.
    """
    inputs = driver.inputs
    walkin = inputs.walkin("w", "b", "c", T0)
    steps: list[Step] = [
        inputs.message("m-gone", "b", "c", T0 - HOUR),
        At(T0 + 2 * LATENESS),
        inputs.message("m-kept", "b", "c", T0 - 2 * HOUR),  # read later: retained longer
        At(T0 + WINDOW + LATENESS + FLUSH),
        Flush(),  # m-gone's timer runs: it is let go
        walkin,
    ]

    driver.run(steps)

    assert driver.reasons() == [(walkin, Reason.LATE)]
    assert "'m-gone'" in driver.dead_letters[0][1].error
    assert inputs.expected()["w"].message_id == "m-gone"  # what the rule would have said
    assert driver.latest()["w"].message_id == "m-kept"
    assert driver.mongo_documents()["w"].message_id == "m-kept"
