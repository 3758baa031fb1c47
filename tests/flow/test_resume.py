"""Crash mid-stream, resume from the same recovery store: the final results are the rule.

A crash is ``TestingSource.ABORT`` with one worker. With 2 workers ``ABORT`` stops only the
worker that reads the source and ``cluster_main`` then never returns (Bytewax says so in
``TestingSource.ABORT``'s docstring), so there the crash is an exception raised by the source,
which stops every worker as any unexpected error would; one worker is crashed both ways.
"""

from __future__ import annotations

from collections import Counter

import pytest
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSource

from tests.flow.driver import (
    ENGINES,
    FLUSH,
    HOLD,
    HOUR,
    MINUTE,
    T0,
    At,
    Crash,
    Engine,
    FlowDriver,
    RunOutput,
    Step,
    daily_counts,
    make_rules,
)
from walkthroughs.errors import ConfigError
from walkthroughs.tools import traffic

RUN_MAIN, CLUSTER_MAIN = ENGINES
CRASHES = [
    pytest.param(RUN_MAIN, "abort", id="run_main-abort"),
    pytest.param(RUN_MAIN, "exception", id="run_main-exception"),
    pytest.param(CLUSTER_MAIN, "exception", id="cluster_main-2w-exception"),
]


def crash(kind: str) -> Step:
    """The step that crashes the run: ``TestingSource.ABORT`` or a ``Crash`` (an exception)."""
    return TestingSource.ABORT() if kind == "abort" else Crash()


def crash_then_resume(
    driver: FlowDriver, steps: list[Step], kind: str, recovery: RecoveryConfig, batch_size: int = 1
) -> tuple[RunOutput, RunOutput]:
    """Run ``steps`` until the crash in them, then again from the same recovery store.

    Returns what each run wrote.
    """
    crashed = driver.run(
        steps, recovery=recovery, batch_size=batch_size, crashes=kind == "exception"
    )
    return crashed, driver.run(steps, recovery=recovery, batch_size=batch_size)


@pytest.mark.parametrize(("engine", "kind"), CRASHES)
def test_crash_mid_stream_then_resume_equals_the_rule(
    engine: Engine, kind: str, recovery: RecoveryConfig
) -> None:
    """Generated traffic, crashed halfway: nothing lost, nothing counted twice.

    The crash comes at a poll of the source, when every earlier batch is stored (one epoch per
    batch, and Bytewax polls only once the previous epoch is written), so the resumed run
    reads on from exactly there: each bad record is dead-lettered once. A run that started
    over would dead-letter the first half's bad records twice.
    """
    driver = FlowDriver(engine)
    sample = traffic.generate(seed=11, businesses=3, customers=80, start_ns=T0)
    records = driver.inputs.traffic(sample)
    batch = 16  # generated traffic holds many keys: see the driver on timers
    half = len(records) // 2 // batch * batch
    steps: list[Step] = [*records[:half], crash(kind), *records[half:]]
    bad = [r for r in records if r.key == b"bad"]

    crashed, _ = crash_then_resume(driver, steps, kind, recovery, batch)

    assert 0 < len(crashed.dead_letters) < len(bad)  # the crash came mid-stream
    expected = driver.inputs.expected()
    assert len(expected) >= 20
    assert driver.latest() == expected
    assert driver.mongo_documents() == expected
    assert daily_counts(driver.mongo_documents().values()) == daily_counts(expected.values())
    assert Counter(d.origin for _, d in driver.dead_letters) == Counter(bad)


@pytest.mark.parametrize(("engine", "kind"), CRASHES)
def test_what_was_decided_before_the_crash_is_only_revised_after_it(
    engine: Engine, kind: str, recovery: RecoveryConfig
) -> None:
    """The resumed run starts from the stored state, not from scratch: a walk-in decided before
    the crash is not decided again (no second first record), only revised; re-delivered
    records are duplicates."""
    driver = FlowDriver(engine)
    inputs = driver.inputs
    m1 = inputs.message("m1", "b", "c1", T0 - HOUR)
    w1 = inputs.walkin("w1", "b", "c1", T0)
    steps: list[Step] = [
        m1,
        w1,
        inputs.walkin("w2", "b", "c2", T0),  # nothing credits it before the crash
        At(T0 + HOLD + FLUSH),
        inputs.message("x1", "b", "c3", T0),  # in this batch the due decisions are made
        inputs.message("x2", "b", "c3", T0 + MINUTE),  # ...and by this one they are stored
        crash(kind),
        inputs.message("m2", "b", "c1", T0 - MINUTE),  # improves w1
        inputs.message("n2", "b", "c2", T0 - MINUTE),  # credits w2: none -> some
        inputs.again(w1),
        inputs.again(m1),
    ]

    before, after = crash_then_resume(driver, steps, kind, recovery)

    assert [
        (a.walkthrough.walkin_id, a.walkthrough.message_id) for _, a in before.walkthroughs
    ] == [("w1", "m1")]
    assert sorted(
        (a.walkthrough.walkin_id, a.walkthrough.message_id, a.revision, a.at_decision)
        for _, a in after.walkthroughs
    ) == [("w1", "m2", True, False), ("w2", "n2", False, False)]
    expected = inputs.expected()
    assert driver.latest() == expected
    assert driver.mongo_documents() == expected
    assert daily_counts(driver.mongo_documents().values()) == Counter({("b", "2001-09-09", 1): 2})


def test_bounded_run_then_a_resumed_run_revises_what_the_first_decided(
    driver: FlowDriver, recovery: RecoveryConfig
) -> None:
    """Bounded mode with recovery: the first run ends at its end of input (deciding everything
    pending), the next one goes on from there with the stored state and revises."""
    inputs = driver.inputs
    steps: list[Step] = [
        inputs.message("m1", "b", "c1", T0 - HOUR),
        inputs.walkin("w1", "b", "c1", T0),
        inputs.walkin("w2", "b", "c2", T0),
        TestingSource.EOF(),  # the end offsets of the first run
        inputs.message("m2", "b", "c1", T0 - MINUTE),
        inputs.message("n2", "b", "c2", T0 - MINUTE),
    ]

    first = driver.run(steps, recovery=recovery)
    second = driver.run(steps, recovery=recovery)

    assert [
        (a.walkthrough.walkin_id, a.walkthrough.message_id, a.at_decision)
        for _, a in first.walkthroughs
    ] == [("w1", "m1", True)]
    assert sorted(
        (a.walkthrough.walkin_id, a.walkthrough.message_id, a.revision)
        for _, a in second.walkthroughs
    ) == [("w1", "m2", True), ("w2", "n2", False)]
    assert second.dead_letters == []
    assert driver.latest() == inputs.expected()


def test_a_resume_under_another_attribution_window_stops_at_start_up(
    driver: FlowDriver, recovery: RecoveryConfig
) -> None:
    """The stored bests were found under the old window: the run refuses before it reads or
    writes anything, with a message naming the setting; the old window resumes as usual."""
    inputs = driver.inputs
    steps: list[Step] = [
        inputs.message("m1", "b", "c1", T0 - HOUR),
        inputs.walkin("w1", "b", "c1", T0),
        TestingSource.EOF(),
        inputs.message("m2", "b", "c1", T0 - MINUTE),
    ]
    driver.run(steps, recovery=recovery)
    written = len(driver.topic)
    window = driver.rules.window_ns

    driver.rules = make_rules(window_ns=window // 7)
    with pytest.raises(Exception) as refused:  # noqa: PT011 (Bytewax wraps the builder's error)
        driver.run(steps, recovery=recovery)
    cause: BaseException | None = refused.value
    while cause is not None and not isinstance(cause, ConfigError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None, refused.value
    assert "WALKTHROUGHS_ATTRIBUTION_WINDOW is 1d" in str(cause)
    assert "under 7d" in str(cause)
    assert len(driver.topic) == written  # nothing read, nothing written

    driver.rules = make_rules(window_ns=window)
    resumed = driver.run(steps, recovery=recovery)
    assert [
        (a.walkthrough.walkin_id, a.walkthrough.message_id) for _, a in resumed.walkthroughs
    ] == [("w1", "m2")]
