"""The timing rules: impossible ones refused, and a window changed under a stored state.

Module: ``attribution.rules``.
"""

from __future__ import annotations

import pickle

import pytest

from tests.attribution_support import HOLD, WINDOW, H, T, ids, msg, step, tick, walkin
from walkthroughs.attribution import (
    Rules,
    Shard,
)
from walkthroughs.errors import ConfigError
from walkthroughs.runtime.config import resumed_window


@pytest.mark.parametrize(
    ("window", "hold", "lateness"),
    [(0, 0, 0), (1, 2, 1), (1, -1, 1)],
    ids=["no-window", "hold-over-lateness", "negative-hold"],
)
def test_rules_reject_impossible_timings(window: int, hold: int, lateness: int) -> None:
    with pytest.raises(ValueError, match=r"must be positive|hold"):
        Rules(window, hold, lateness)


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
