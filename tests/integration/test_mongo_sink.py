"""The MongoDB sink on the real server: monotone revisions, idempotent replays, self-repairing
counts. (Several concurrent writers are covered end to end with 2 workers.)"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from walkthroughs.codec import to_mongo_doc
from walkthroughs.schema import Channel, Walkthrough
from walkthroughs.sinks.mongo import (
    COUNTS,
    RECOUNT_INDEX,
    WALKTHROUGHS,
    ensure_indexes,
    write_walkthroughs,
)

Doc = dict[str, Any]
S = 10**9
T = 1_900_000_000 * S


def wt(walkin: str, message: str, sent_at: int, channel: int, business: str = "b") -> Walkthrough:
    return Walkthrough(walkin, business, "c", "l", T, message, channel, "", sent_at, "2030-03-17")


def counts(db: Database[Doc]) -> list[Doc]:
    return sorted(db[COUNTS].find({}, {"_id": 0}), key=lambda d: (d["business_id"], d["date"]))


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


def test_indexes_cover_the_recount_and_replace_the_previous_release(
    mongo_db: Database[Doc],
) -> None:
    # A database of the previous release: walkthroughs indexed by (business_id, local_date) only.
    mongo_db[WALKTHROUGHS].create_index(
        [("business_id", ASCENDING), ("local_date", ASCENDING)], name="business_date"
    )
    ensure_indexes(mongo_db)
    ensure_indexes(mongo_db)  # every sink partition calls it at start-up
    indexes = mongo_db[WALKTHROUGHS].index_information()
    assert sorted(indexes) == ["_id_", RECOUNT_INDEX]
    assert [field for field, _ in indexes[RECOUNT_INDEX]["key"]] == [
        "business_id",
        "local_date",
        "channel",
    ]
    counts_index = mongo_db[COUNTS].index_information()["business_date"]
    assert counts_index["unique"]
