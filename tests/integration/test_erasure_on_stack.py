"""Erasure on the real stack: ``erase`` mid-traffic, ``kill -9`` between the state drop and the
MongoDB delete, resume; then nothing of the customer is left and everyone else is exact."""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pymongo import MongoClient, monitoring

from tests.integration.dataflow_harness import (
    START_NS,
    WINDOW_NS,
    Deployment,
    assert_exact,
    chunks,
    recovery_args,
)
from tests.reference import expected_walkthroughs
from walkthroughs.attribution import customer_key, erasure_reference
from walkthroughs.attribution.keys import erasure_digest
from walkthroughs.sinks.kafka import TombstoneWriter
from walkthroughs.sinks.mongo import WALKTHROUGHS, ensure_indexes, write_walkthroughs
from walkthroughs.sinks.mongo_erasure import ERASURE_JOURNAL, Eraser, erase_customer
from walkthroughs.testing.recovery import init_recovery
from walkthroughs.tools import traffic
from walkthroughs.wire.codec import encode_walkthrough
from walkthroughs.wire.schema import Channel, Erased, Walkthrough


def test_erase_mid_traffic_with_a_kill_9_before_the_delete(
    deployment: Deployment, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=41, businesses=3, customers=400, start_ns=START_NS)
    messages, walkins = chunks(sample.messages, 2), chunks(sample.walkins, 2)
    deployment.produce("m", messages[0])
    deployment.produce("w", walkins[0])
    first = deployment.run(*recovery_args(recovery, workers=2))
    assert first.returncode == 0, first.stderr[-3000:]
    held = deployment.output()
    by_customer: dict[tuple[str, str], int] = {}
    for w in held.values():  # the customer with the most walkthroughs so far
        by_customer[(w.business_id, w.customer_id)] = (
            by_customer.get((w.business_id, w.customer_id), 0) + 1
        )
    b, c = max(by_customer, key=lambda k: (by_customer[k], k))
    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    victim_ids = [i for i, w in expected.items() if (w.business_id, w.customer_id) == (b, c)]

    asked = deployment.cli("erase", "--business", b, "--customer", c, "--reason", "test")
    assert asked.returncode == 0, asked.stderr
    assert erasure_reference(b, c) in asked.stdout
    deployment.produce("m", messages[1])  # mid-traffic: the rest, the customer's included
    deployment.produce("w", walkins[1])
    crashed = deployment.run(
        *recovery_args(recovery, workers=2),
        WT_FAILPOINT="erase.before_mongo_delete:1",
        WALKTHROUGHS_LOG_LEVEL="INFO",
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    assert '"event":"erasure_state"' in crashed.stderr  # state dropped, MongoDB not yet
    assert _documents_of(deployment, b, c), "the kill came before the delete"

    resumed = deployment.run(*recovery_args(recovery, workers=2))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert _documents_of(deployment, b, c) == []
    latest = deployment.latest_records()
    assert all(latest[i] is None for i in victim_ids if i in latest)  # latest: a tombstone
    assert {i for i, w in held.items() if w.customer_id == c and w.business_id == b} <= {
        i for i, w in latest.items() if w is None
    }
    others = [e for e in sample.events if (e.business_id, e.customer_id) != (b, c)]
    figures = assert_exact(deployment, replace(sample, events=others))  # counts included
    client: MongoClient[dict[str, Any]] = MongoClient(deployment.mongo_uri)
    assert client[deployment.name][ERASURE_JOURNAL].count_documents({}) == 0
    client.close()
    audit = [line for line in resumed.stderr.splitlines() if '"event":"erasure_outputs"' in line]
    assert audit, resumed.stderr[-3000:]
    assert all(b not in line and c not in line for line in audit)  # no id in clear
    print(f"erased {len(victim_ids)} walkthroughs of one customer; {figures}")


def _documents_of(deployment: Deployment, business_id: str, customer_id: str) -> list[str]:
    client: MongoClient[dict[str, Any]] = MongoClient(deployment.mongo_uri)
    try:
        found = client[deployment.name][WALKTHROUGHS].find(
            {"business_id": business_id, "customer_id": customer_id}, {"_id": 1}
        )
        return sorted(str(d["_id"]) for d in found)
    finally:
        client.close()


def test_documents_older_than_state_are_found_deleted_recounted_and_tombstoned(
    deployment: Deployment,
) -> None:
    """State held one walk-in of the customer; MongoDB holds two more, let go from state long
    ago. A crash had already deleted a document once, before its day was recounted (the
    journal says so). One erasure leaves the counts equal to the collection grouped, a
    tombstone after every record of the customer's ids, and the other customer untouched."""
    client: MongoClient[dict[str, Any]] = MongoClient(deployment.mongo_uri, tz_aware=True)
    db = client[deployment.name]
    ensure_indexes(db)
    t = START_NS

    def wt(walkin: str, customer: str, date: str) -> Walkthrough:
        return Walkthrough(walkin, "b", customer, "l", t, "m", Channel.SMS, "", t - 1, date)

    kept = wt("k1", "kept", "2030-01-01")
    gone = [
        wt("g1", "gone", "2030-01-01"),
        wt("g2", "gone", "2030-01-02"),
        wt("g3", "gone", "2030-01-03"),
    ]
    # r1 was gone's walk-in; let go, its id was taken by "kept" (the sink moved the document)
    reused = [wt("r1", "gone", "2030-01-01"), wt("r1", "kept", "2030-01-02")]
    write_walkthroughs(db, [kept, *gone, reused[0]])
    write_walkthroughs(db, [reused[1]])
    for w in [kept, *gone, *reused]:
        deployment.produce("out", [(w.walkin_id.encode(), encode_walkthrough(w))])
    # the crash: g3's document deleted, its day not yet recounted; the journal remembers it
    db[WALKTHROUGHS].delete_one({"_id": "g3"})
    journal_id = erasure_digest(customer_key("b", "gone")).hex()
    db[ERASURE_JOURNAL].insert_one(
        {"_id": journal_id, "days": [{"business_id": "b", "date": "2030-01-03"}]}
    )
    eraser = Eraser(TombstoneWriter(deployment.kafka, deployment.topic("out"), 30), time.time_ns)
    request = Erased("b", "gone", ("g1",), 1, 1, 1, 0, ("r1",))  # g1 held; r1 a ghost

    outcome = eraser(db, request)
    again = eraser(db, request)  # a replay changes nothing

    assert (outcome.documents, outcome.tombstones, outcome.days) == (2, 1, 3)  # g2: MongoDB only
    assert (again.documents, again.tombstones, again.days) == (0, 0, 0)
    assert sorted(d["_id"] for d in db[WALKTHROUGHS].find({})) == ["k1", "r1"]
    assert db[ERASURE_JOURNAL].count_documents({}) == 0
    _, counts = deployment.mongo()
    assert counts == [
        {"business_id": "b", "date": "2030-01-01", "count": 1, "by_channel": {"SMS": 1}},
        {"business_id": "b", "date": "2030-01-02", "count": 1, "by_channel": {"SMS": 1}},
    ]
    latest = deployment.latest_records()
    assert latest["g2"] is None  # found in MongoDB, tombstoned after its record
    assert latest["k1"] == kept
    assert latest["r1"] == reused[1]  # the ghost's id is another customer's now: left alone
    client.close()


class _Deletes(monitoring.CommandListener):
    """Counts the delete commands a client sends to the walkthroughs (pymongo's own monitoring)."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += event.command_name == "delete" and event.command["delete"] == WALKTHROUGHS

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_customer_with_a_long_history_is_erased_in_acknowledged_chunks(
    deployment: Deployment,
) -> None:
    """A test account's history, let go from state long ago, is read as a stream: tombstones
    go out in chunks of at most ``chunk`` ids, each acknowledged before the next is read, the
    documents are deleted ``delete_chunk`` at a time (each request short on a slow server), and
    every one of its ids ends as a tombstone; the days are recounted to the collection."""
    deletes = _Deletes()
    client: MongoClient[dict[str, Any]] = MongoClient(
        deployment.mongo_uri, tz_aware=True, event_listeners=[deletes]
    )
    db = client[deployment.name]
    ensure_indexes(db)
    t = START_NS
    history = [
        Walkthrough(
            f"h{i:03}", "b", "test", "l", t, "m", Channel.SMS, "", t - 1, f"2030-01-{i % 5 + 1:02}"
        )
        for i in range(45)
    ]
    other = Walkthrough("o1", "b", "other", "l", t, "m", Channel.EMAIL, "", t - 1, "2030-01-01")
    write_walkthroughs(db, [*history, other])
    writer = TombstoneWriter(deployment.kafka, deployment.topic("out"), 30)
    sizes: list[int] = []

    def spy(walkin_ids: Sequence[str]) -> None:
        sizes.append(len(walkin_ids))
        writer(walkin_ids)

    request = Erased("b", "test", ("h000",), 1, 1, 0, 0)
    deletes.count = 0
    outcome = erase_customer(db, request, spy, chunk=7, delete_chunk=4)

    assert (outcome.documents, outcome.tombstones, outcome.days) == (45, 44, 5)
    assert sizes == [7] * 6 + [2]  # h000 was state's to tombstone
    assert deletes.count == 12  # 45 documents, 4 a request
    latest = deployment.latest_records()
    assert sorted(latest) == [w.walkin_id for w in history[1:]]
    assert set(latest.values()) == {None}
    _, counts = deployment.mongo()
    assert counts == [
        {"business_id": "b", "date": "2030-01-01", "count": 1, "by_channel": {"EMAIL": 1}}
    ]
    client.close()
