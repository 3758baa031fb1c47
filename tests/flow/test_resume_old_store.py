"""A recovery store written by an earlier release resumes exactly.

``data/store-before-regroup/`` was written by this scenario's first run (``python -m
tests.flow.test_resume_old_store DIR``) with the code as it stood before the package was
grouped by role (issue 24): the stored state names its classes by module path
(``walkthroughs.attribution.store``), and the stateful steps by id. A module moved without
care would make this store unreadable; a step id changed would make it start from nothing.
Do not regenerate it with later code: it stands for the stores deployed before.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.flow.driver import (
    ENGINES,
    FLUSH,
    HOLD,
    HOUR,
    MINUTE,
    T0,
    At,
    FlowDriver,
    Step,
    existing_store,
)

STORE = Path(__file__).parent / "data" / "store-before-regroup"
RUN_MAIN = ENGINES[0]


def scenario(driver: FlowDriver) -> tuple[list[Step], list[Step]]:
    """The steps read before the store was written, and those read after."""
    inputs = driver.inputs
    m1 = inputs.message("m1", "b", "c1", T0 - HOUR)
    w1 = inputs.walkin("w1", "b", "c1", T0)
    before: list[Step] = [
        m1,
        w1,
        inputs.walkin("w2", "b", "c2", T0),  # nothing credits it before the store was written
        inputs.walkin("w3", "b", "c3", T0 + HOUR),  # read, not yet decided (hold)
        At(T0 + HOLD + FLUSH),
        inputs.message("x1", "b", "c4", T0),  # in this batch the due decisions are made
        inputs.message("x2", "b", "c4", T0 + MINUTE),  # ...and by this one they are stored
    ]
    after: list[Step] = [
        inputs.message("m2", "b", "c1", T0 - MINUTE),  # improves w1
        inputs.message("n2", "b", "c2", T0 - MINUTE),  # credits w2: none -> some
        inputs.message("k3", "b", "c3", T0 + HOUR - MINUTE),  # credits w3 at its first decision
        At(T0 + HOUR + HOLD + 2 * FLUSH),
        inputs.again(w1),
        inputs.again(m1),
    ]
    return before, after


def test_a_store_written_before_the_regroup_resumes_exactly(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(STORE, store)
    driver = FlowDriver(RUN_MAIN)
    before, after = scenario(driver)
    driver.clock.advance_to(T0 + HOLD + FLUSH)  # where the first run's clock stood
    resumed = driver.run([*before, *after], recovery=existing_store(store))
    assert sorted(
        (a.walkthrough.walkin_id, a.walkthrough.message_id, a.revision, a.at_decision)
        for _, a in resumed.walkthroughs
    ) == [("w1", "m2", True, False), ("w2", "n2", False, False), ("w3", "k3", False, False)]
    assert resumed.dead_letters == []  # the re-read duplicates are known from the stored state


def write_store(directory: Path) -> None:
    """The first run of the scenario, into a new store at ``directory``."""
    from tests.flow.driver import recovery_store

    driver = FlowDriver(RUN_MAIN)
    before, _ = scenario(driver)
    out = driver.run(before, recovery=recovery_store(directory))
    decided = [(a.walkthrough.walkin_id, a.walkthrough.message_id) for _, a in out.walkthroughs]
    assert decided == [("w1", "m1")], decided


if __name__ == "__main__":
    write_store(Path(sys.argv[1]))
