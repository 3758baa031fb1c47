"""Generated traffic through the whole flow: every sink holds the rule, keyed as its writer needs.

The MongoDB sink is a ``FixedPartitionedSink`` routed by its key (one writer per business), so
a key other than the business would let two workers write one business's documents and counts.
"""

from __future__ import annotations

from collections import Counter

from tests.flow.driver import (
    MESSAGES,
    T0,
    WALKINS,
    FlowDriver,
    daily_counts,
    mongo_key,
    state_key,
)
from walkthroughs.tools import traffic


def test_generated_traffic_reaches_every_sink_keyed_for_its_writer(driver: FlowDriver) -> None:
    """Several businesses, late receipts, duplicates, one bad record of each kind, 5 zones."""
    sample = traffic.generate(seed=7, businesses=4, customers=60, start_ns=T0)
    records = driver.inputs.traffic(sample)

    driver.run(records, batch_size=16)  # many keys: see the driver on timers

    expected = driver.inputs.expected()
    assert len({w.business_id for w in expected.values()}) >= 3  # the keys below say something
    assert driver.mongo, "no walkthrough reached the MongoDB sink"
    assert all(key == mongo_key(w.business_id) for key, w in driver.mongo)  # one writer each
    assert Counter(w for _, w in driver.mongo) == Counter(
        a.walkthrough for _, a in driver.walkthroughs
    )
    assert all(
        key == state_key(a.walkthrough.business_id, a.walkthrough.customer_id)
        for key, a in driver.walkthroughs
    )
    assert driver.latest() == expected
    assert driver.mongo_documents() == expected
    assert daily_counts(driver.mongo_documents().values()) == daily_counts(expected.values())

    bad = [r for r in records if r.key == b"bad"]
    assert len(bad) == sample.bad
    assert Counter(d.origin for _, d in driver.dead_letters) == Counter(bad)
    assert {key for key, _ in driver.dead_letters} == {f"{MESSAGES}#0", f"{WALKINS}#0"}
