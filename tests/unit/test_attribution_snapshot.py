"""State across snapshots: pickled whole, packed, compressed, resumed as it was.

Modules: ``attribution.store``, ``snapshot``.
"""

from __future__ import annotations

import pickle

import pytest

from tests.attribution_support import (
    HOLD,
    ORIGIN,
    RULES,
    H,
    S,
    T,
    customer_state,
    ids,
    msg,
    step,
    tick,
    walkin,
)
from walkthroughs.attribution import (
    Shard,
    customer_key,
    finish,
    process_batch,
)
from walkthroughs.attribution.crowded import CrowdedCustomer
from walkthroughs.attribution.customer import CROWDED
from walkthroughs.attribution.records import M_CAMPAIGN, W_BEST, W_DECIDED, W_LOCATION, W_READ
from walkthroughs.attribution.snapshot import STATE_FORMAT, encode
from walkthroughs.wire.schema import (
    MessageEvent,
    WalkInEvent,
)


def test_state_survives_a_pickle_round_trip_with_its_timers() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 0)
    restored = pickle.loads(pickle.dumps(shard))
    assert restored.next_deadline_ns() == HOLD
    assert ids(tick(restored, HOLD)) == [("w", "m1")]


def test_every_walkin_field_survives_a_pickle_round_trip() -> None:
    shard = Shard()
    step(shard, msg("m1", T - H), 0)
    step(shard, walkin(), 5)
    before = customer_state(shard, "b", "c").records()[1][0]
    after = customer_state(Shard.restore(shard.snapshot().blob()), "b", "c").records()[1][0]
    assert after == before
    assert after[W_BEST] is not None
    assert (after[W_READ], after[W_DECIDED], after[W_LOCATION]) == (5, False, "loc")


def test_a_snapshot_of_another_state_format_is_refused_with_a_reason() -> None:
    blob = encode((STATE_FORMAT + 1, {}, 0, 0, 0, 0))
    with pytest.raises(ValueError, match=f"state format {STATE_FORMAT + 1}"):
        Shard.restore(blob)


def test_a_packed_customer_keeps_best_the_stored_message_and_its_timer() -> None:
    shard = Shard(live_limit=0)  # packs every customer after every batch
    step(shard, MessageEvent("m1", "b", "c", T - H, 1, "campaign"), 0)
    step(shard, WalkInEvent("w", "b", "c", "loc", T, "2030-03-17"), 0)
    unpacked = customer_state(shard, "b", "c")
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
