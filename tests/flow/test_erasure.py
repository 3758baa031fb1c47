"""Erasure through the whole flow: state forgets the customer, its records are tombstoned, its
MongoDB documents are handed over for deletion, later events are dropped (not dead-lettered),
and every other customer stays exact, resumed from a recovery store or not."""

from __future__ import annotations

from bytewax.recovery import RecoveryConfig

from tests.flow.driver import (
    DAY,
    ERASURES,
    HOLD,
    HOUR,
    LATENESS,
    MINUTE,
    T0,
    At,
    Crash,
    FlowDriver,
    Flush,
    Step,
    mongo_key,
    state_key,
)
from walkthroughs.tools import traffic
from walkthroughs.wire.erasure_requests import request_key
from walkthroughs.wire.schema import Erased, Reason


def test_an_erased_customer_leaves_nothing_and_the_others_stay_exact(driver: FlowDriver) -> None:
    i = driver.inputs
    steps: list[Step] = [
        i.message("m1", "b1", "gone", T0 - HOUR),
        i.message("m2", "b1", "kept", T0 - HOUR),
        i.walkin("w1", "b1", "gone", T0),
        i.walkin("w2", "b1", "kept", T0),
        At(T0 + HOLD + 1),
        Flush(),
        i.walkin("w3", "b1", "gone", T0 + MINUTE),  # pending when the request comes
        i.message("m3", "b1", "gone", T0 + 30),
        i.erasure("b1", "gone"),
        # after the request: a late receipt, a backfilled walk-in, a duplicate of the erased one
        i.message("m4", "b1", "gone", T0 + 40),
        i.walkin("w4", "b1", "gone", T0 + 2 * MINUTE),
        i.walkin("w1", "b1", "gone", T0),
        i.message("m5", "b1", "kept", T0 + 10),
        At(T0 + 2 * HOLD + MINUTE),
        Flush(),
    ]
    driver.run(steps)

    assert driver.inputs.expected() == driver.latest()  # w2 only, crediting m5
    assert set(driver.latest()) == {"w2"}
    assert "w1" in {a.walkthrough.walkin_id for _, a in driver.walkthroughs}  # decided, then
    assert set(driver.tombstones()) == {"w1"}  # w3 was still pending: it has no record
    (erased,) = driver.erasures()
    assert (erased.business_id, erased.customer_id, erased.walkin_ids) == ("b1", "gone", ("w1",))
    assert (erased.messages, erased.walkins, erased.ghosts) == (2, 2, 0)
    assert not driver.has("w3")
    assert [key for key, e in driver.mongo_writes if isinstance(e, Erased)] == [mongo_key("b1")]
    assert set(driver.mongo_documents()) == {"w2"}
    assert driver.dead_letters == []  # dropped events are never copied anywhere
    # the tombstone comes after every walkthrough of w1, from the same step (order per key)
    last_w1 = max(n for n, (_, r) in enumerate(driver.topic) if getattr(r, "walkin_id", "") == "w1")
    first = next(n for n, (_, r) in enumerate(driver.topic) if hasattr(r, "walkthrough"))
    assert first < last_w1
    assert {key for key, _ in driver.topic} <= {state_key("b1", "gone"), state_key("b1", "kept")}


def test_the_horizon_ends_and_the_customer_may_come_back(driver: FlowDriver) -> None:
    i = driver.inputs
    horizon = driver.rules.erasure_horizon_ns
    steps: list[Step] = [
        i.message("m1", "b1", "c", T0 - HOUR),
        i.erasure("b1", "c"),
        At(T0 + horizon + 1),
        Flush(),
    ]
    i.erased.clear()  # past the horizon, its events count again
    steps += [
        i.message("m2", "b1", "c", T0 + horizon),
        i.walkin("w1", "b1", "c", T0 + horizon + MINUTE),
        At(T0 + horizon + DAY),
        Flush(),
    ]
    driver.run(steps)
    assert set(driver.latest()) == {"w1"}
    assert driver.latest()["w1"].message_id == "m2"  # m1 went with the erasure
    assert driver.inputs.expected() == {"w1": driver.latest()["w1"]}


def test_an_erasure_survives_a_crash_and_a_replay_of_the_request(
    driver: FlowDriver, recovery: RecoveryConfig
) -> None:
    """Generated traffic, one customer erased mid-way, a crash after it, the request replayed:
    the erased customer stays gone and the rest equals the rule."""
    sample = traffic.generate(seed=11, businesses=2, customers=30, start_ns=T0 - 3 * DAY)
    records = driver.inputs.traffic(sample)
    victim = next(iter(driver.inputs.expected().values()))
    b, c = victim.business_id, victim.customer_id
    batch = 16  # the crash at a poll of the source, as in test_resume
    half = len(records) // 2 // batch * batch
    request = driver.inputs.erasure(b, c)
    first: list[Step] = [*records[: half - 1], request, At(T0 + HOLD + 1), Crash()]
    driver.run(first, batch_size=batch, recovery=recovery, crashes=True)
    # Flush first: the source would read the last partial batch after the clock moved on
    rest: list[Step] = [*records[half - 1 :], request, Flush(), At(T0 + 2 * DAY)]
    driver.run([*first[:-1], *rest], batch_size=batch, recovery=recovery)

    latest = driver.latest()
    assert all((w.business_id, w.customer_id) != (b, c) for w in latest.values())
    assert all((w.business_id, w.customer_id) != (b, c) for w in driver.mongo_documents().values())
    assert latest == driver.inputs.expected()
    assert driver.mongo_documents() == driver.inputs.expected()
    assert len(driver.erasures()) >= 2  # carried out again on replay: idempotent downstream
    assert all(d.origin.topic != ERASURES for _, d in driver.dead_letters)


def test_a_tombstone_of_the_request_changes_nothing_and_is_never_dead_lettered(
    driver: FlowDriver,
) -> None:
    """The operators' way (docs/operations.md) to delete a request record: a tombstone under its
    key. The erasure stands (later events are still dropped), nothing is erased again, and the
    DLQ never sees the key, which holds the customer's ids; a tombstone whose key names no
    customer is bad."""
    i = driver.inputs
    steps: list[Step] = [
        i.message("m1", "b1", "gone", T0 - HOUR),
        i.walkin("w1", "b1", "gone", T0),
        At(T0 + HOLD + 1),
        Flush(),
        i.erasure("b1", "gone"),
        i.raw(ERASURES, None, request_key("b1", "gone")),  # the request record deleted
        i.message("m2", "b1", "gone", T0 + 10),  # a late receipt within the horizon
        i.walkin("w2", "b1", "gone", T0 + MINUTE),
        i.raw(ERASURES, None, b"not a key"),
        At(T0 + 2 * HOLD + MINUTE),
        Flush(),
    ]
    driver.run(steps)

    assert driver.latest() == {}
    assert len(driver.erasures()) == 1
    assert [(d.origin.key, d.reason) for _, d in driver.dead_letters] == [
        (b"not a key", Reason.UNDECODABLE)
    ]


def test_erasing_a_former_owner_of_a_walkin_id_leaves_its_new_owner_s_record(
    driver: FlowDriver,
) -> None:
    """A walk-in let go is a ghost for a window more, but its id's claim lapsed with it: another
    customer may use the id and own its record now. The erasure of the first owner must not
    tombstone that record: the flow leaves ghosts' ids to the MongoDB sink, which tombstones an
    id only while its document is still the erased customer's."""
    i = driver.inputs
    t1 = T0 + LATENESS + HOLD + MINUTE
    steps: list[Step] = [
        i.message("m1", "b1", "gone", T0 - HOUR),
        i.walkin("w1", "b1", "gone", T0),
        At(T0 + HOLD + 1),
        Flush(),
        At(t1),  # w1 let go: a ghost of gone's, its claim lapsed
        Flush(),
        i.message("m2", "b1", "newowner", t1 - HOUR),
        i.walkin("w1", "b1", "newowner", t1),
        At(t1 + HOLD + 1),
        Flush(),
        i.erasure("b1", "gone"),
        At(t1 + 2 * HOLD + MINUTE),
        Flush(),
    ]
    driver.run(steps)

    (erased,) = driver.erasures()
    assert (erased.walkin_ids, erased.ghost_ids) == ((), ("w1",))
    assert driver.tombstones() == []
    assert driver.latest()["w1"].customer_id == "newowner"
    assert driver.latest() == driver.mongo_documents()


def test_a_reused_walkin_id_of_an_erased_customer_is_dropped_not_dead_lettered(
    driver: FlowDriver,
) -> None:
    """The claim step cannot know of erasures: it marks a reused id and the customer's shard
    decides. An erased customer's walk-in under another's id is dropped like its other events;
    anyone else's is still a dead letter."""
    i = driver.inputs
    steps: list[Step] = [
        i.walkin("w1", "b1", "owner", T0),
        i.erasure("b1", "gone"),
        Flush(),
        i.walkin("w1", "b1", "gone", T0 + MINUTE),  # reuses owner's id, after the request
        i.walkin("w1", "b1", "other", T0 + MINUTE),
        Flush(),
    ]
    driver.run(steps)

    assert [(d.reason, d.origin.value) for _, d in driver.dead_letters] == [
        (Reason.WALKIN_ID_REUSED, steps[4].value)  # type: ignore[union-attr]
    ]
