"""The Bytewax adapter: timers on the flush grid, immutable snapshots, decisions at EOF.

The adapters take and give parcels (``walkthroughs.dataflow.parcels``); ``records`` opens them.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from walkthroughs.attribution import Event, Rules, Shard, customer_key, shard_of
from walkthroughs.attribution.claims import Claims
from walkthroughs.dataflow.flow import AttributeLogic, ClaimLogic, Cluster
from walkthroughs.dataflow.parcels import Decisions, Events, Parcel, Walkins
from walkthroughs.runtime.clock import FakeClock
from walkthroughs.utils.routes import carriers, worker_of
from walkthroughs.wire.schema import Attributed, MessageEvent, Origin, ReusedWalkIn, WalkInEvent

S = 1_000_000_000
T0 = 1_900_000_000 * S
RULES = Rules(window_ns=7 * 86400 * S, hold_ns=30 * S, lateness_ns=86400 * S)
ORIGIN = Origin("t", 0, 0, None, b"")


def logic(clock: FakeClock) -> AttributeLogic:
    return AttributeLogic(Shard(), RULES, clock, flush_interval_ns=5 * S)


def records(parcels: list[Parcel]) -> list[object]:
    """What the parcels hold, in order."""
    return [record for parcel in parcels for record in parcel]


def test_notify_at_rounds_the_next_deadline_up_to_the_flush_grid() -> None:
    clock = FakeClock(T0 + 2 * S)
    adapter = logic(clock)
    assert adapter.notify_at() is None
    adapter.on_batch([Events([(WalkInEvent("w", "b", "c", "", T0, "2030-03-17"), ORIGIN)])])
    # Due at T0 + 32 s; the grid is every 5 s, so the wake-up is at T0 + 35 s.
    assert adapter.notify_at() == datetime.fromtimestamp((T0 + 35 * S) / S, UTC)


def test_snapshot_is_a_copy_that_later_events_do_not_change() -> None:
    clock = FakeClock(T0)
    adapter = logic(clock)
    adapter.on_batch([Events([(MessageEvent("m", "b", "c", T0 - S, 1, ""), ORIGIN)])])
    snapshot = adapter.snapshot()
    adapter.on_batch([Events([(WalkInEvent("w", "b", "c", "", T0, "2030-03-17"), ORIGIN)])])
    restored = pickle.loads(pickle.dumps(snapshot)).customer(customer_key("b", "c"))
    assert restored is not None
    assert len(restored.walkins) == 0


def test_eof_decides_pending_walkins_and_notify_decides_due_ones() -> None:
    clock = FakeClock(T0)
    adapter = logic(clock)
    events: list[Event] = [
        (MessageEvent("m", "b", "c", T0 - S, 1, ""), ORIGIN),
        (WalkInEvent("w1", "b", "c", "", T0, "2030-03-17"), ORIGIN),
    ]
    out, discard = adapter.on_batch([Events(events)])
    assert (out, discard) == ([], False)
    clock.advance(30 * S)
    notified, _ = adapter.on_notify()
    assert [o.walkthrough.walkin_id for o in records(notified) if isinstance(o, Attributed)] == [
        "w1"
    ]
    assert [p.__class__ for p in notified] == [Decisions]
    adapter.on_batch([Events([(WalkInEvent("w2", "b", "c", "", T0, "2030-03-17"), ORIGIN)])])
    at_eof, _ = adapter.on_eof()
    assert [o.walkthrough.walkin_id for o in records(at_eof) if isinstance(o, Attributed)] == ["w2"]


def test_logic_is_discarded_when_its_shard_is_empty() -> None:
    clock = FakeClock(T0)
    adapter = logic(clock)
    adapter.on_batch([Events([(MessageEvent("m", "b", "c", T0 - S, 1, ""), ORIGIN)])])
    clock.advance(RULES.window_ns + RULES.lateness_ns)
    assert adapter.on_notify() == ([], True)


def _emitted(kind: str) -> float:
    return REGISTRY.get_sample_value("walkthroughs_emitted_total", {"kind": kind}) or 0.0


def test_emitted_counters_tell_first_walkthroughs_from_revisions() -> None:
    clock = FakeClock(T0)
    adapter = logic(clock)
    first, revisions = _emitted("first"), _emitted("revision")
    adapter.on_batch(
        [
            Events(
                [
                    (MessageEvent("m1", "b", "c", T0 - 10 * S, 1, ""), ORIGIN),
                    (WalkInEvent("w1", "b", "c", "", T0, "2030-03-17"), ORIGIN),
                    (WalkInEvent("w2", "b", "c", "", T0, "2030-03-17"), ORIGIN),
                ]
            )
        ]
    )
    clock.advance(30 * S)
    decided, _ = adapter.on_notify()
    assert len(records(decided)) == 2
    # A message sent closer to both walk-ins arrives after their first decisions: two revisions.
    revised, _ = adapter.on_batch(
        [Events([(MessageEvent("m2", "b", "c", T0 - 5 * S, 1, ""), ORIGIN)])]
    )
    assert [o.revision for o in records(revised) if isinstance(o, Attributed)] == [True, True]
    assert (_emitted("first") - first, _emitted("revision") - revisions) == (2, 2)


def test_claim_logic_passes_the_owner_marks_the_reuse_and_forgets_in_time() -> None:
    clock = FakeClock(T0)
    cluster = Cluster()
    cluster.learn(3)
    claims = ClaimLogic(Claims(), RULES.lateness_ns, clock, cluster)
    owner = (WalkInEvent("w", "b1", "c", "", T0, "2030-03-17"), ORIGIN)
    other = (WalkInEvent("w", "b2", "c", "", T0, "2030-03-17"), ORIGIN)
    out, discard = claims.on_batch([Walkins([owner, other]), Walkins([owner])])
    # One bundle per worker, keyed so that it reaches the worker that holds its routes.
    for carrier, bundle in out:
        assert {worker_of(route, 3) for route, _ in bundle} == {carriers(3).index(carrier)}
    parcels = [parcel for _, bundle in out for parcel in bundle]
    routed = {route: list(parcel) for route, parcel in parcels}  # a parcel per customer route
    assert len(routed) == len(parcels)
    assert all(parcel.__class__ is Events for _, parcel in parcels)
    passed = [item for route, items in routed.items() for item in items]
    # The owner passes (its duplicate too: its customer drops it); the reuse is marked, for its
    # customer's shard to dead-letter.
    assert [item for item in passed if item[0].business_id == "b1"] == [owner, owner]
    assert [item for item in passed if item[0].business_id == "b2"] == [
        (ReusedWalkIn(*other[0]), ORIGIN)
    ]
    assert next(i for i in passed if i[0].business_id == "b2")[0].__class__ is ReusedWalkIn
    assert all(item[0].business_id in {"b1", "b2"} for item in passed)
    for route, items in routed.items():
        assert {shard_of(i[0].business_id, i[0].customer_id) for i in items} == {route}
    assert not discard
    claims.on_notify()  # the first sweep: nothing expired yet
    clock.advance(RULES.lateness_ns + S)
    notify = claims.notify_at()
    assert notify is not None
    assert notify <= datetime.fromtimestamp(clock.now_ns / S, UTC)
    assert claims.on_notify() == ([], True)  # the claim expired: the shard is discarded


def test_claims_before_the_worker_count_is_known_fail_with_a_message() -> None:
    claims = ClaimLogic(Claims(), RULES.lateness_ns, FakeClock(T0), Cluster())
    walkin = (WalkInEvent("w", "b", "c", "", T0, "2030-03-17"), ORIGIN)
    with pytest.raises(RuntimeError, match="count_workers was never built"):
        claims.on_batch([Walkins([walkin])])
