"""The MongoDB-wire server does exactly what our sinks need; a change of server shows here first.

The sinks upsert walkthroughs by ``_id`` (``$set``/``$setOnInsert``, in unordered bulks), read the
current documents of a batch back with ``$in``, recount per (business, date) with an aggregation
``$match`` + ``$group``/``$sum`` and keep one count document per (business, date) behind a unique
index. Times are BSON dates: millisecond precision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]
AT = datetime(2026, 11, 24, 9, 30, 15, 123000, tzinfo=UTC)


def upsert(walkin_id: str, business: str, date: str, channel: str) -> UpdateOne:
    return UpdateOne(
        {"_id": walkin_id},
        {
            "$set": {
                "business_id": business,
                "local_date": date,
                "channel": channel,
                "walkin_at": AT,
            },
            "$setOnInsert": {"first_seen": "batch-1"},
        },
        upsert=True,
    )


def test_bulk_upserts_are_idempotent_and_keep_set_on_insert(mongo_db: Database[Doc]) -> None:
    coll = mongo_db["walkthroughs"]
    ops = [upsert(f"w{i}", f"b{i % 3}", "2026-11-24", "EMAIL") for i in range(50)]
    first = coll.bulk_write(ops, ordered=False)
    assert first.upserted_count == 50
    again = coll.bulk_write(ops, ordered=False)
    assert again.upserted_count == 0
    assert again.matched_count == 50
    assert coll.count_documents({}) == 50

    revised = UpdateOne(
        {"_id": "w1"},
        {"$set": {"channel": "SMS"}, "$setOnInsert": {"first_seen": "batch-2"}},
        upsert=True,
    )
    coll.bulk_write([revised], ordered=False)
    doc = coll.find_one({"_id": "w1"})
    assert doc is not None
    assert (doc["channel"], doc["first_seen"]) == ("SMS", "batch-1")
    assert doc["walkin_at"] == AT.replace(tzinfo=None)  # BSON dates come back naive UTC, ms


def test_find_by_id_list_and_count_with_filter(mongo_db: Database[Doc]) -> None:
    coll = mongo_db["walkthroughs"]
    coll.bulk_write([upsert(f"w{i}", f"b{i % 2}", "2026-11-24", "PUSH") for i in range(10)])
    found = sorted(
        d["_id"] for d in coll.find({"_id": {"$in": ["w1", "w3", "missing"]}}, {"_id": 1})
    )
    assert found == ["w1", "w3"]
    assert coll.count_documents({"business_id": "b0", "local_date": "2026-11-24"}) == 5


def test_group_counts_per_business_date_channel(mongo_db: Database[Doc]) -> None:
    coll = mongo_db["walkthroughs"]
    coll.create_index([("business_id", ASCENDING), ("local_date", ASCENDING)])
    rows = [
        ("w1", "b1", "2026-11-24", "EMAIL"),
        ("w2", "b1", "2026-11-24", "EMAIL"),
        ("w3", "b1", "2026-11-24", "SMS"),
        ("w4", "b1", "2026-11-25", "SMS"),
        ("w5", "b2", "2026-11-24", "PUSH"),
    ]
    coll.bulk_write([upsert(*r) for r in rows], ordered=False)
    pipeline: list[Doc] = [
        {"$match": {"business_id": {"$in": ["b1", "b2"]}, "local_date": {"$in": ["2026-11-24"]}}},
        {
            "$group": {
                "_id": {"b": "$business_id", "d": "$local_date", "c": "$channel"},
                "n": {"$sum": 1},
            }
        },
    ]
    got = {(r["_id"]["b"], r["_id"]["d"], r["_id"]["c"]): r["n"] for r in coll.aggregate(pipeline)}
    assert got == {
        ("b1", "2026-11-24", "EMAIL"): 2,
        ("b1", "2026-11-24", "SMS"): 1,
        ("b2", "2026-11-24", "PUSH"): 1,
    }


def test_unique_index_keeps_one_count_document_per_business_date(
    mongo_db: Database[Doc],
) -> None:
    counts = mongo_db["walkthrough_counts"]
    counts.create_index([("business_id", ASCENDING), ("date", ASCENDING)], unique=True)
    counts.create_index([("business_id", ASCENDING), ("date", ASCENDING)], unique=True)  # again
    key = {"business_id": "b1", "date": "2026-11-24"}
    for n in (3, 4):
        counts.update_one(key, {"$set": {"count": n, "by_channel": {"EMAIL": n}}}, upsert=True)
    assert counts.count_documents(key) == 1
    doc = counts.find_one(key, {"_id": 0})
    assert doc == {
        "business_id": "b1",
        "date": "2026-11-24",
        "count": 4,
        "by_channel": {"EMAIL": 4},
    }
    with pytest.raises(DuplicateKeyError):
        counts.insert_one({"business_id": "b1", "date": "2026-11-24", "count": 1})


def test_replace_upsert_rewrites_an_embedded_document_with_other_keys(
    mongo_db: Database[Doc],
) -> None:
    """The counts sink replaces whole documents: FerretDB 1.x ignores a ``$set`` that changes an
    embedded document's keys but not its values, so this pins down what the sink relies on."""
    counts = mongo_db["walkthrough_counts"]
    key = {"business_id": "b1", "date": "2026-11-24"}
    counts.bulk_write(
        [ReplaceOne(key, {**key, "count": 1, "by_channel": {"EMAIL": 1}}, upsert=True)],
        ordered=False,
    )
    counts.bulk_write(
        [ReplaceOne(key, {**key, "count": 1, "by_channel": {"SMS": 1}}, upsert=True)], ordered=False
    )
    assert counts.find_one(key, {"_id": 0}) == {**key, "count": 1, "by_channel": {"SMS": 1}}
    assert counts.count_documents(key) == 1
