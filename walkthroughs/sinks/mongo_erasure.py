"""Erasure in MongoDB and on the output topic: what state no longer knows of a customer.

State drops the customer and reports what it held (``schema.Erased``); the walkthroughs of
walk-ins let go from state long ago are only in MongoDB. So, for each erasure, in this order:

1. read the customer's documents (index ``mongo.CUSTOMER_INDEX``) and any journal a crash left;
2. write a tombstone to the output topic for every one of their ids that state did not report
   (state's own go through the walkthroughs' producer, after their records), and wait for the
   broker's acknowledgement;
3. journal the (business, date) pairs to recount, then delete the documents;
4. recount those pairs (``mongo.recount``), then drop the journal.

Every step is idempotent, and a crash anywhere replays the whole erasure (the epoch that read
the request is not committed until this returns): tombstones before the delete, so a document
is never gone before its tombstone is written; the journal, so the days of documents deleted
before a crash are still recounted after it. The journal holds a digest and dates, no id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymongo.database import Database

from walkthroughs.attribution import customer_key
from walkthroughs.attribution.keys import erasure_digest
from walkthroughs.runtime import failpoints
from walkthroughs.runtime.erasure_audit import audit_outputs
from walkthroughs.sinks.mongo import MOVED_FROM, WALKTHROUGHS, Doc, recount
from walkthroughs.wire.schema import Erased

ERASURE_JOURNAL = "erasures_in_progress"
TombstoneWriter = Callable[[Sequence[str]], None]
"""Writes a tombstone for each walkin_id and returns once the broker acknowledged them all."""


@dataclass(frozen=True)
class ErasureOutcome:
    """What one erasure removed outside state: the audit line's counts."""

    documents: int
    tombstones: int
    days: int


TOMBSTONE_CHUNK = 10_000
"""Ids tombstoned per acknowledged write: an erasure of a test account with 200k walkthroughs
holds this many ids and its dates, never all of its documents."""
DELETE_CHUNK = 500
"""Documents deleted per request, as the sink writes them: each request stays well within the
MongoDB timeout on a slow server, and a retry after a timeout resumes where the deletes were
(what is deleted stays deleted; the journal keeps the days to recount)."""


def erase_customer(
    db: Database[Doc],
    erased: Erased,
    tombstones: TombstoneWriter | None,
    chunk: int = TOMBSTONE_CHUNK,
    delete_chunk: int = DELETE_CHUNK,
) -> ErasureOutcome:
    """Delete the customer's documents, recount their days, tombstone their ids; see above.

    The documents are read as a stream: memory is the (business, date) pairs and one chunk of
    ids, whatever the customer's history.
    """
    b, c = erased.business_id, erased.customer_id
    journal_id = erasure_digest(customer_key(b, c)).hex()
    journal = db[ERASURE_JOURNAL].find_one({"_id": journal_id}) or {}
    pairs = {(str(p["business_id"]), str(p["date"])) for p in journal.get("days", [])}
    owned = {"business_id": b, "customer_id": c}
    reported = set(erased.walkin_ids)
    found = older = 0
    pending: list[str] = []

    def tombstone_pending() -> None:
        nonlocal older
        if pending and tombstones is not None:
            tombstones(tuple(pending))
        older += len(pending)
        pending.clear()

    projection = {"_id": 1, "local_date": 1, MOVED_FROM: 1}
    for doc in db[WALKTHROUGHS].find(owned, projection, batch_size=min(chunk, 1_000)):
        found += 1
        pairs.add((b, str(doc.get("local_date"))))
        moved = doc.get(MOVED_FROM)
        if moved:
            pairs.add((str(moved[0]), str(moved[1])))
        if doc["_id"] not in reported:
            pending.append(str(doc["_id"]))
            if len(pending) >= chunk:
                tombstone_pending()
    tombstone_pending()
    if found:
        # Documents, not pairs as arrays: FerretDB 1.x stores no nested arrays.
        days = [{"business_id": pb, "date": d} for pb, d in sorted(pairs)]
        record = {"_id": journal_id, "days": days}
        db[ERASURE_JOURNAL].replace_one({"_id": journal_id}, record, upsert=True)
    failpoints.hit("erase.before_mongo_delete")
    deleted = _delete_in_chunks(db, owned, delete_chunk) if found else 0
    if pairs:
        recount(db, pairs)
    if journal or found:
        db[ERASURE_JOURNAL].delete_one({"_id": journal_id})
    return ErasureOutcome(deleted, older, len(pairs))


def _delete_in_chunks(db: Database[Doc], owned: Doc, size: int) -> int:
    """Delete the documents matching ``owned``, ``size`` at a time; return how many."""
    deleted = 0
    while True:
        ids = [d["_id"] for d in db[WALKTHROUGHS].find(owned, {"_id": 1}, limit=size)]
        if not ids:
            return deleted
        deleted += db[WALKTHROUGHS].delete_many({"_id": {"$in": ids}, **owned}).deleted_count


class Eraser:
    """``erase_customer`` with the process's tombstone writer, audited (``erasure_audit``)."""

    def __init__(self, tombstones: TombstoneWriter | None, now_ns: Callable[[], int]) -> None:
        self._tombstones = tombstones
        self._now_ns = now_ns

    def __call__(self, db: Database[Doc], erased: Erased) -> ErasureOutcome:
        """Carry out one erasure; see the module docstring."""
        outcome = erase_customer(db, erased, self._tombstones)
        audit_outputs(erased, outcome.documents, outcome.tombstones, outcome.days, self._now_ns())
        return outcome
