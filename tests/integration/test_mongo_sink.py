"""The MongoDB sink on the real server: monotone revisions, idempotent replays, self-repairing
counts. (Several concurrent writers are covered end to end with 2 workers.)"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database

from walkthroughs.sinks import mongo
from walkthroughs.sinks.mongo import (
    COUNTS,
    CUSTOMER_INDEX,
    RECOUNT_INDEX,
    WALKTHROUGHS,
    ensure_indexes,
    write_walkthroughs,
)
from walkthroughs.wire.codec import to_mongo_doc
from walkthroughs.wire.schema import Channel, Walkthrough

Doc = dict[str, Any]
S = 10**9
T = 1_900_000_000 * S


def wt(walkin: str, message: str, sent_at: int, channel: int, business: str = "b") -> Walkthrough:
    return Walkthrough(walkin, business, "c", "l", T, message, channel, "", sent_at, "2030-03-17")


def counts(db: Database[Doc]) -> list[Doc]:
    return sorted(
        db[COUNTS].find({}, {"_id": 0, "version": 0}), key=lambda d: (d["business_id"], d["date"])
    )


def test_an_older_revision_never_overwrites_a_newer_one(mongo_db: Database[Doc]) -> None:
    ensure_indexes(mongo_db)
    newer = wt("w1", "m2", T - 60 * S, Channel.SMS)
    older = wt("w1", "m1", T - 3600 * S, Channel.EMAIL)
    tie_lower_id = wt("w1", "m0", T - 60 * S, Channel.PUSH)  # same time, smaller id: older
    assert write_walkthroughs(mongo_db, [newer]) == 1
    assert write_walkthroughs(mongo_db, [older, tie_lower_id]) == 0
    assert write_walkthroughs(mongo_db, [older, newer]) == 0  # a replayed batch
    doc = mongo_db[WALKTHROUGHS].find_one({"_id": "w1"})
    assert doc is not None
    assert (doc["message_id"], doc["channel"]) == ("m2", "SMS")
    assert counts(mongo_db) == [
        {"business_id": "b", "date": "2030-03-17", "count": 1, "by_channel": {"SMS": 1}}
    ]


def test_a_revision_moves_the_channel_count(mongo_db: Database[Doc]) -> None:
    ensure_indexes(mongo_db)
    write_walkthroughs(
        mongo_db,
        [wt("w1", "m1", T - 3600 * S, Channel.EMAIL), wt("w2", "m9", T - 7200 * S, Channel.EMAIL)],
    )
    write_walkthroughs(mongo_db, [wt("w1", "m2", T - 60 * S, Channel.SMS)])
    assert counts(mongo_db) == [
        {"business_id": "b", "date": "2030-03-17", "count": 2, "by_channel": {"EMAIL": 1, "SMS": 1}}
    ]


def test_counts_are_repaired_by_a_replay_after_a_crash_between_writes(
    mongo_db: Database[Doc],
) -> None:
    ensure_indexes(mongo_db)
    batch = [
        wt(f"w{i}", f"m{i}", T - i * S, Channel(i % 5), business=f"b{i % 2}") for i in range(1, 9)
    ]
    # The crash: documents written, counts never recomputed.
    mongo_db[WALKTHROUGHS].insert_many([to_mongo_doc(w) for w in batch])
    assert counts(mongo_db) == []
    assert write_walkthroughs(mongo_db, batch) == 0  # nothing to improve...
    repaired = counts(mongo_db)  # ...but every (business, date) touched is recounted
    assert [(d["business_id"], d["count"]) for d in repaired] == [("b0", 4), ("b1", 4)]
    assert all(sum(d["by_channel"].values()) == d["count"] for d in repaired)
    write_walkthroughs(mongo_db, batch)
    assert counts(mongo_db) == repaired


def test_indexes_cover_the_recount(mongo_db: Database[Doc]) -> None:
    ensure_indexes(mongo_db)
    ensure_indexes(mongo_db)  # every sink partition calls it at start-up
    indexes = mongo_db[WALKTHROUGHS].index_information()
    assert sorted(indexes) == sorted(["_id_", RECOUNT_INDEX, CUSTOMER_INDEX])
    assert [field for field, _ in indexes[RECOUNT_INDEX]["key"]] == [
        "business_id",
        "local_date",
        "channel",
    ]
    assert [field for field, _ in indexes[CUSTOMER_INDEX]["key"]] == ["business_id", "customer_id"]
    counts_index = mongo_db[COUNTS].index_information()["business_date"]
    assert counts_index["unique"]


def grouped(db: Database[Doc]) -> list[Doc]:
    """What the counts must equal: the walkthroughs collection grouped by business and date."""
    by: dict[tuple[str, str], dict[str, int]] = {}
    for d in db[WALKTHROUGHS].find({}):
        channels = by.setdefault((d["business_id"], d["local_date"]), {})
        channels[d["channel"]] = channels.get(d["channel"], 0) + 1
    return [
        {
            "business_id": b,
            "date": day,
            "count": sum(c.values()),
            "by_channel": dict(sorted(c.items())),
        }
        for (b, day), c in sorted(by.items())
    ]


def test_an_id_taken_over_by_another_business_moves_and_both_days_are_recounted(
    mongo_db: Database[Doc],
) -> None:
    ensure_indexes(mongo_db)
    write_walkthroughs(mongo_db, [wt("w1", "m1", T - 60 * S, Channel.SMS, business="b1")])
    # A later owner's walkthrough ranks lower (an older message), yet the id is its now.
    write_walkthroughs(mongo_db, [wt("w1", "m0", T - 3600 * S, Channel.EMAIL, business="b2")])
    doc = mongo_db[WALKTHROUGHS].find_one({"_id": "w1"})
    assert doc is not None
    assert (doc["business_id"], doc["message_id"]) == ("b2", "m0")
    assert doc["moved_from"] == ["b1", "2030-03-17"]
    assert counts(mongo_db) == grouped(mongo_db)  # b1's day fell to zero: no document
    assert [d["business_id"] for d in counts(mongo_db)] == ["b2"]


def test_a_crash_after_a_move_is_repaired_by_the_replay(mongo_db: Database[Doc]) -> None:
    ensure_indexes(mongo_db)
    old = wt("w1", "m1", T - 60 * S, Channel.SMS, business="b1")
    write_walkthroughs(mongo_db, [old, wt("w2", "m2", T - 60 * S, Channel.SMS, business="b1")])
    new = wt("w1", "m0", T - 3600 * S, Channel.EMAIL, business="b2")
    # The crash: the document moved, no count recomputed (b1 still counts w1).
    moved = to_mongo_doc(new) | {"moved_from": ["b1", "2030-03-17"]}
    mongo_db[WALKTHROUGHS].replace_one({"_id": "w1"}, moved)
    write_walkthroughs(mongo_db, [new])  # the replay: nothing to write, everything recounted
    assert counts(mongo_db) == grouped(mongo_db)
    assert [(d["business_id"], d["count"]) for d in counts(mongo_db)] == [("b1", 1), ("b2", 1)]


def test_a_recount_that_races_another_writer_starts_over(
    mongo_db: Database[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between this recount's read and write, another partition moves a document away from the
    business and recounts it: the stale write misses its version, and the recount retries."""
    ensure_indexes(mongo_db)
    write_walkthroughs(
        mongo_db,
        [wt(f"w{i}", f"m{i}", T - 60 * S, Channel.SMS, business="b1") for i in range(3)],
    )
    real_grouped = mongo.grouped_walkthroughs
    raced: list[bool] = []

    def grouped_then_raced(db: Database[Doc], pairs: set[tuple[str, str]]) -> Any:
        counted = real_grouped(db, pairs)
        if not raced:  # the other writer strikes once, after this one counted
            raced.append(True)
            write_walkthroughs(db, [wt("w0", "m9", T - 3600 * S, Channel.EMAIL, business="b2")])
        return counted

    monkeypatch.setattr(mongo, "grouped_walkthroughs", grouped_then_raced)
    write_walkthroughs(mongo_db, [wt("w1", "m1", T - 60 * S, Channel.SMS, business="b1")])
    assert raced
    assert counts(mongo_db) == grouped(mongo_db)
    assert [(d["business_id"], d["count"]) for d in counts(mongo_db)] == [("b1", 2), ("b2", 1)]
