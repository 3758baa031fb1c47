"""MongoDB output: walkthrough documents and daily counts that replays can never corrupt.

Design (it must hold on real MongoDB and on FerretDB, which has no transactions, stops an
unordered bulk at its first error and supports only ``$sum``/``$count`` in ``$group``):

* **One writer per business.** This is a ``FixedPartitionedSink`` keyed by the partition of
  the business (``partition_of``): every walkthrough of a business reaches the one worker that
  owns its partition, in parcels (``walkthroughs.dataflow.parcels``), so
  no two workers ever write the same walkthrough documents at once (a walk-in id has one owner
  at a time: ``claims``).
* **Monotone upserts.** Revisions of a walk-in only ever move to a greater
  ``(message_sent_at, message_id)`` (see ``attribution``). A batch reads the stored rank of its
  walk-ins and upserts only those it improves, so a replayed or stale revision changes nothing.
  Every write replaces a whole document by its key (upsert): no write can fail on a duplicate
  key. Replacement rather than ``$set``: FerretDB 1.x skips a ``$set`` of an embedded document
  whose values equal the stored ones under other keys (``{"EMAIL": 1}`` -> ``{"SMS": 1}``);
  ``tests/integration/test_mongo_wire.py`` pins down what we rely on.
* **Counts recomputed, never incremented.** After the upserts, the batch recounts each
  (business, local date) it touched from the ``walkthroughs`` collection (one ``$group`` with
  ``$sum``, answered from the ``RECOUNT_INDEX`` alone on MongoDB) and replaces its count
  document (``count``, ``by_channel``), or deletes it when the count fell to zero. Replaying
  any batch, any number of times, in any state, converges to the collection grouped: nothing is
  double-counted, and a crash between the two steps is repaired by the replay.
* **Owners change, counts stay exact.** A walkthrough whose id the collection holds under
  another (business, customer) replaces the document (the output topic's latest record is the
  new owner's) and records ``moved_from``, whose day is recounted whenever the document is
  written. That recount writes another business's count document, so count writes are
  conditional on the ``version`` read before counting (``recount``), and start over on a miss.
* **Outages.** Transient errors (network, election, server selection, a reply that takes
  longer than the request timeout) are retried with bounded exponential backoff; past
  ``retry_limit_s``, or at once when the process is asked to stop, the sink raises
  ``SinkUnavailableError`` so the worker stops and recovery replays, rather than dropping
  anything.
* **Bounded requests.** Upserts go in bulks of at most ``BULK_SIZE`` documents, so that one
  request's reply comes well within the request timeout even from a slow server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from pymongo import ASCENDING, DeleteOne, InsertOne, MongoClient, ReplaceOne
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure

from walkthroughs.errors import SinkUnavailableError
from walkthroughs.runtime import failpoints, metrics, stopping
from walkthroughs.sinks.partitions import SINK_PARTITIONS
from walkthroughs.wire.codec import to_mongo_doc
from walkthroughs.wire.schema import Erased, Walkthrough

log = logging.getLogger(__name__)

WALKTHROUGHS = "walkthroughs"
COUNTS = "walkthrough_counts"
BULK_SIZE = 500
"""Documents per request: FerretDB writes ~100-250 a second, so a request of this size is
answered within seconds, far inside the request timeout; MongoDB is barely slower at it."""
Doc = dict[str, Any]
T = TypeVar("T")
Sleeper = Callable[[float], None]
Eraser = Callable[[Database[Doc], Erased], object]
"""Carries out one erasure (``mongo_erasure.erase_customer`` with its tombstone writer)."""
# Errors worth retrying: the server or the network is away for a while.
TRANSIENT = (AutoReconnect, ConnectionFailure)


RECOUNT_INDEX = "business_date_channel"
"""Covers the recount: ``_recount`` reads only these three fields, so on MongoDB it is an
index-only scan (no document fetched), and its prefix serves the dashboard's per-day queries."""
CUSTOMER_INDEX = "business_customer"
"""Finds a customer's documents, however old: what an erasure deletes (``mongo_erasure``)."""
DUPLICATE_KEY = 11000
VERSION = "version"
"""Field of a count document, raised by every rewrite: the recount's optimistic concurrency."""
MOVED_FROM = "moved_from"
"""Field of a walkthrough document whose id changed owner: ``[business_id, local_date]`` of
the previous owner's walkthrough, whose day is recounted whenever the document is written."""
RECOUNT_ATTEMPTS = 50
_NO_DOCUMENT: Any = object()
_STORED_FIELDS = {
    "message_sent_at_ns": 1,
    "message_id": 1,
    "business_id": 1,
    "customer_id": 1,
    "local_date": 1,
    MOVED_FROM: 1,
}


def ensure_indexes(db: Database[Doc]) -> None:
    """Create the indexes the sink and the dashboard rely on (idempotent).

    Start-up calls this concurrently from every process: creating an existing index is a no-op.
    """
    db[WALKTHROUGHS].create_index(
        [("business_id", ASCENDING), ("local_date", ASCENDING), ("channel", ASCENDING)],
        name=RECOUNT_INDEX,
    )
    db[WALKTHROUGHS].create_index(
        [("business_id", ASCENDING), ("customer_id", ASCENDING)], name=CUSTOMER_INDEX
    )
    db[COUNTS].create_index(
        [("business_id", ASCENDING), ("date", ASCENDING)], name="business_date", unique=True
    )


def write_walkthroughs(db: Database[Doc], walkthroughs: Iterable[Walkthrough]) -> int:
    """Upsert what improves on the stored documents, then recount what was touched.

    Idempotent and order-independent; see the module docstring. Returns how many walkthrough
    documents were written.
    """
    best: dict[str, Walkthrough] = {}
    for w in walkthroughs:
        held = best.get(w.walkin_id)
        if held is None or _rank(w) > _rank(held):
            best[w.walkin_id] = w
    if not best:
        return 0
    stored = {
        d["_id"]: d
        for chunk in _chunks(list(best))
        for d in db[WALKTHROUGHS].find({"_id": {"$in": chunk}}, _STORED_FIELDS)
    }
    pairs = {(w.business_id, w.local_date) for w in best.values()}
    docs: list[Doc] = []
    for w in best.values():
        current = stored.get(w.walkin_id)
        doc = _replacement(w, current)
        moved = (doc if doc is not None else current or {}).get(MOVED_FROM)
        if moved:  # recounted whenever the document is touched: a crash cannot lose it
            pairs.add((str(moved[0]), str(moved[1])))
        if doc is not None:
            docs.append(doc)
    for chunk in _chunks(docs):
        db[WALKTHROUGHS].bulk_write(
            [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk], ordered=False
        )
    failpoints.hit("mongo.between_writes")
    # Recount every (business, date) of the batch, changed or not: a replay after a crash
    # between the upserts and the recount must still repair the counts.
    recount(db, pairs)
    return len(docs)


def _replacement(w: Walkthrough, held: Doc | None) -> Doc | None:
    """The document to write for ``w`` over the stored one (None: the stored one stands)."""
    if held is None:
        return to_mongo_doc(w)
    if (held.get("business_id"), held.get("customer_id")) != (w.business_id, w.customer_id):
        # The id has a new owner (its claim had expired, or a replay chose another): the
        # document follows the output topic, and the old owner's day is recounted.
        return to_mongo_doc(w) | {MOVED_FROM: [held.get("business_id"), held.get("local_date")]}
    if _rank(w) <= (held.get("message_sent_at_ns", -1), held.get("message_id", "")):
        return None
    doc = to_mongo_doc(w)
    if MOVED_FROM in held:
        doc[MOVED_FROM] = held[MOVED_FROM]
    return doc


def _chunks(items: list[T]) -> Iterator[list[T]]:
    """Consecutive slices of at most ``BULK_SIZE`` items: one request each."""
    return (items[i : i + BULK_SIZE] for i in range(0, len(items), BULK_SIZE))


def _rank(w: Walkthrough) -> tuple[int, str]:
    return (w.message_sent_at_ns, w.message_id)


def recount(db: Database[Doc], pairs: set[tuple[str, str]]) -> None:
    """Make the count documents of ``pairs`` equal the walkthroughs collection grouped.

    Optimistic concurrency: the versions are read before the documents are counted, and each
    count document is replaced (or inserted, or deleted when its count fell to zero) only if
    its version is still the one read. Another writer in between (a partition that moved a
    document away from this business) makes the write miss, and the recount starts over.
    """
    for _ in range(RECOUNT_ATTEMPTS):
        versions = _count_versions(db, pairs)
        counts = grouped_walkthroughs(db, pairs)
        ops: list[Any] = []
        for (b, d), by in sorted(counts.items()):
            version = versions.get((b, d), _NO_DOCUMENT)
            doc = {
                "business_id": b,
                "date": d,
                "count": sum(by.values()),
                "by_channel": dict(sorted(by.items())),
                VERSION: (0 if version in (_NO_DOCUMENT, None) else version) + 1,
            }
            if version is _NO_DOCUMENT:
                if by:  # no zero-count documents
                    ops.append(InsertOne(doc))
                continue
            held = {"business_id": b, "date": d, VERSION: version}
            if version is None:  # written by a release before versions
                held[VERSION] = {"$exists": False}
            ops.append(ReplaceOne(held, doc) if by else DeleteOne(held))
        if all(_applied(db, chunk) for chunk in _chunks(ops)):
            return
    msg = (
        f"counts of {len(pairs)} (business, date) pairs kept changing over {RECOUNT_ATTEMPTS} tries"
    )
    raise RuntimeError(msg)


def _count_versions(db: Database[Doc], pairs: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The version of each existing count document of ``pairs`` (None: it has none)."""
    businesses, dates = sorted({b for b, _ in pairs}), sorted({d for _, d in pairs})
    query = {"business_id": {"$in": businesses}, "date": {"$in": dates}}
    found = {}
    for doc in db[COUNTS].find(query, {"business_id": 1, "date": 1, VERSION: 1}):
        pair = (doc["business_id"], doc["date"])
        if pair in pairs:
            found[pair] = doc.get(VERSION)
    return found


def grouped_walkthroughs(
    db: Database[Doc], pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    """The walkthroughs of ``pairs`` counted by channel (one ``$group``, index-only on MongoDB)."""
    businesses, dates = sorted({b for b, _ in pairs}), sorted({d for _, d in pairs})
    counts: dict[tuple[str, str], dict[str, int]] = {pair: {} for pair in pairs}
    pipeline: list[Doc] = [
        {"$match": {"business_id": {"$in": businesses}, "local_date": {"$in": dates}}},
        {
            "$group": {
                "_id": {"b": "$business_id", "d": "$local_date", "c": "$channel"},
                "n": {"$sum": 1},
            }
        },
    ]
    for row in db[WALKTHROUGHS].aggregate(pipeline):
        pair = (row["_id"]["b"], row["_id"]["d"])
        if pair in counts:  # the $in product may match pairs this batch did not touch
            counts[pair][row["_id"]["c"]] = int(row["n"])
    return counts


def _applied(db: Database[Doc], ops: list[Any]) -> bool:
    """Run one bulk of conditional count writes; False if any missed its version."""
    try:
        result = db[COUNTS].bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        if all(e.get("code") == DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            return False  # another writer inserted the document first
        raise
    done = result.matched_count + result.deleted_count + result.inserted_count
    return done == len(ops)


class MongoOutput(FixedPartitionedSink[list[Walkthrough | Erased], None]):
    """Walkthroughs keyed by ``business_id`` into ``SINK_PARTITIONS`` single-writer partitions.

    All partitions of a process share one client (pymongo clients are thread-safe and pool their
    connections), closed when the last partition closes. Every request waits at most
    ``request_timeout_s`` for the server's reply, so a stalled server fails a call instead of
    holding the worker: the call is retried, for up to ``retry_limit_s``, and a stop request
    (``stopping``) ends the retrying at once. Indexes are ensured once, at start-up
    (``startup_mongo.check_mongo``).
    """

    def __init__(
        self,
        uri: str,
        database: str,
        *,
        retry_limit_s: float = 120.0,
        request_timeout_s: float = 20.0,
        sleep: Sleeper = stopping.wait,
        monotonic: Callable[[], float] = time.monotonic,
        client_factory: Callable[[str, float], MongoClient[Doc]] | None = None,
        erase: Eraser | None = None,
    ) -> None:
        self._uri = uri
        self._erase = erase
        self._database = database
        self._retry_limit_s = retry_limit_s
        self._request_timeout_s = request_timeout_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._client_factory = client_factory or _client
        self._lock = threading.Lock()
        self._client: MongoClient[Doc] | None = None
        self._open_parts = 0

    def list_parts(self) -> list[str]:
        """Every worker can write every partition; Bytewax gives each to exactly one."""
        return [f"mongo-{i:02d}" for i in range(SINK_PARTITIONS)]

    def part_fn(self, item_key: str) -> int:
        """The partition a parcel is keyed by (``partition_of`` its business)."""
        return int(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _MongoWriter:
        """Attach the partition to the process's client (connections are made on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(self._uri, self._request_timeout_s)
            self._open_parts += 1
            client = self._client
        retrying = Retrying(self._retry_limit_s, self._sleep, self._monotonic)
        return _MongoWriter(client[self._database], retrying, self._release, self._erase)

    def _release(self) -> None:
        with self._lock:
            self._open_parts -= 1
            if self._open_parts == 0 and self._client is not None:
                self._client.close()
                self._client = None


def _client(uri: str, request_timeout_s: float) -> MongoClient[Doc]:
    timeout_ms = int(request_timeout_s * 1000)
    return MongoClient(
        uri,
        serverSelectionTimeoutMS=min(5000, timeout_ms),
        connectTimeoutMS=min(5000, timeout_ms),
        socketTimeoutMS=timeout_ms,
        tz_aware=True,
    )


class Retrying:
    """Runs idempotent actions, retrying transient errors with capped exponential backoff."""

    def __init__(self, limit_s: float, sleep: Sleeper, monotonic: Callable[[], float]) -> None:
        self._limit_s = limit_s
        self._sleep = sleep
        self._monotonic = monotonic

    def __call__(self, what: str, action: Callable[[], Any]) -> Any:
        """Run ``action``; retry it on network errors, within the limit and until a stop."""
        deadline = self._monotonic() + self._limit_s
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except TRANSIENT as exc:
                stop = stopping.requested()
                if stop or self._monotonic() + delay > deadline:
                    why = "until a stop was requested" if stop else f"for {self._limit_s:.0f}s"
                    msg = (
                        f"MongoDB unavailable {why} during {what} ({attempt} attempts): "
                        f"{type(exc).__name__}; stopping so recovery replays"
                    )
                    log.error(
                        "mongo_sink_failed", extra={"fields": {"what": what, "attempts": attempt}}
                    )
                    raise SinkUnavailableError(msg) from exc
                metrics.SINK_RETRIES.labels("mongo").inc()
                log.warning(
                    "mongo_retry",
                    extra={
                        "fields": {
                            "what": what,
                            "attempt": attempt,
                            "delay_s": delay,
                            "error": type(exc).__name__,
                        }
                    },
                )
                self._sleep(delay)
                delay = min(delay * 2, 10.0)


class _MongoWriter(StatefulSinkPartition[list[Walkthrough | Erased], None]):
    """Writes each batch Bytewax hands over before returning.

    Synchronous on purpose: a write must be in MongoDB before Bytewax can commit the epoch that
    produced it, and ``write_batch`` returning is the only point Bytewax 0.21 is known to order
    before the commit (buffering until ``snapshot()`` lost writes under ``kill -9`` in our
    crash test). Errors that are not transient (a bug, a misconfiguration) are not retried: they
    crash the worker loudly.
    """

    def __init__(
        self,
        db: Database[Doc],
        retrying: Retrying,
        release: Callable[[], None],
        erase: Eraser | None,
    ) -> None:
        self._db = db
        self._retrying = retrying
        self._release = release
        self._erase = erase

    def write_batch(self, parcels: list[list[Walkthrough | Erased]]) -> None:
        """Write the parcels in their order: walkthroughs in bulks, each erasure where it falls."""
        values: list[Walkthrough | Erased] = [item for parcel in parcels for item in parcel]
        start = 0
        for i, item in enumerate(values):
            if item.__class__ is Erased:
                self._write([cast(Walkthrough, w) for w in values[start:i]])
                self._erase_one(item)
                start = i + 1
        self._write(cast(list[Walkthrough], values[start:] if start else values))

    def _erase_one(self, erased: Erased) -> None:
        eraser = self._erase
        if eraser is None:
            msg = "an erasure reached a MongoDB sink built without an eraser"
            raise RuntimeError(msg)
        self._retrying("erase_customer", lambda: eraser(self._db, erased))

    def _write(self, values: list[Walkthrough]) -> None:
        if not values:
            return
        metrics.SINK_BATCH_SIZE.labels("mongo").observe(len(values))
        started = time.monotonic()
        written = self._retrying("write_walkthroughs", lambda: write_walkthroughs(self._db, values))
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        log.debug(
            "mongo_batch",
            extra={"fields": {"count": len(values), "written": written, "elapsed_ms": elapsed_ms}},
        )

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._release()
