"""MongoDB output: walkthrough documents and daily counts that replays can never corrupt.

Design (it must hold on real MongoDB and on FerretDB, which has no transactions, stops an
unordered bulk at its first error and supports only ``$sum``/``$count`` in ``$group``):

* **One writer per business.** This is a ``FixedPartitionedSink`` keyed by ``business_id``:
  Bytewax routes every walkthrough of a business to the one worker that owns its partition, so
  no two workers ever write the same documents and read-then-write is race-free.
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
  document (``count``, ``by_channel``). Replaying any batch,
  any number of times, in any state, converges to the collection grouped: nothing is
  double-counted, and a crash between the two steps is repaired by the replay. Counts never
  reach zero (walkthroughs are never deleted), so there are no zero-count documents.
* **Outages.** Transient errors (network, election, server selection) are retried with bounded
  exponential backoff; past ``retry_limit_s`` the sink raises ``SinkUnavailableError`` so the
  worker stops and recovery replays, rather than dropping anything.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from pymongo import ASCENDING, MongoClient, ReplaceOne
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure, PyMongoError

from walkthroughs import failpoints, metrics
from walkthroughs.codec import to_mongo_doc
from walkthroughs.errors import SinkUnavailableError
from walkthroughs.schema import Walkthrough

log = logging.getLogger(__name__)

WALKTHROUGHS = "walkthroughs"
COUNTS = "walkthrough_counts"
SINK_PARTITIONS = 64
"""Fixed: partition names are part of the recovery format (their state is empty, though)."""
Doc = dict[str, Any]
Sleeper = Callable[[float], None]
# Errors worth retrying: the server or the network is away for a while.
TRANSIENT = (AutoReconnect, ConnectionFailure)


RECOUNT_INDEX = "business_date_channel"
"""Covers the recount: ``_recount`` reads only these three fields, so on MongoDB it is an
index-only scan (no document fetched), and its prefix serves the dashboard's per-day queries."""
SUPERSEDED_INDEXES = ("business_date",)
"""Indexes of walkthroughs that earlier releases created and ``RECOUNT_INDEX`` now covers."""
INDEX_NOT_FOUND = 27  # the server's error code for dropping an index that is not there


def ensure_indexes(db: Database[Doc]) -> None:
    """Create the indexes the sink and the dashboard rely on, drop superseded ones (idempotent).

    Every sink partition calls this at start-up, concurrently: creating an existing index is a
    no-op, and a superseded index another partition dropped first is not an error.
    """
    walkthroughs = db[WALKTHROUGHS]
    walkthroughs.create_index(
        [("business_id", ASCENDING), ("local_date", ASCENDING), ("channel", ASCENDING)],
        name=RECOUNT_INDEX,
    )
    existing = walkthroughs.index_information()
    for name in SUPERSEDED_INDEXES:
        if name in existing:
            try:
                walkthroughs.drop_index(name)
            except OperationFailure as exc:
                if exc.code != INDEX_NOT_FOUND:
                    raise
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
        d["_id"]: (d.get("message_sent_at_ns", -1), d.get("message_id", ""))
        for d in db[WALKTHROUGHS].find(
            {"_id": {"$in": list(best)}}, {"message_sent_at_ns": 1, "message_id": 1}
        )
    }
    changed = [
        w for w in best.values() if w.walkin_id not in stored or _rank(w) > stored[w.walkin_id]
    ]
    if changed:
        db[WALKTHROUGHS].bulk_write(
            [ReplaceOne({"_id": w.walkin_id}, to_mongo_doc(w), upsert=True) for w in changed],
            ordered=False,
        )
    failpoints.hit("mongo.between_writes")
    # Recount every (business, date) of the batch, changed or not: a replay after a crash
    # between the upserts and the recount must still repair the counts.
    _recount(db, {(w.business_id, w.local_date) for w in best.values()})
    return len(changed)


def _rank(w: Walkthrough) -> tuple[int, str]:
    return (w.message_sent_at_ns, w.message_id)


def _recount(db: Database[Doc], pairs: set[tuple[str, str]]) -> None:
    businesses = sorted({b for b, _ in pairs})
    dates = sorted({d for _, d in pairs})
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
    ops = [
        ReplaceOne(
            {"business_id": b, "date": d},
            {
                "business_id": b,
                "date": d,
                "count": sum(by.values()),
                "by_channel": dict(sorted(by.items())),
            },
            upsert=True,
        )
        for (b, d), by in sorted(counts.items())
        if by  # a pair with no document yet (impossible after the upserts) gets no zero count
    ]
    if ops:
        db[COUNTS].bulk_write(ops, ordered=False)


class MongoOutput(FixedPartitionedSink[Walkthrough, None]):
    """Walkthroughs keyed by ``business_id`` into ``SINK_PARTITIONS`` single-writer partitions."""

    def __init__(
        self,
        uri: str,
        database: str,
        *,
        retry_limit_s: float = 120.0,
        sleep: Sleeper = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        client_factory: Callable[[str], MongoClient[Doc]] | None = None,
    ) -> None:
        self._uri = uri
        self._database = database
        self._retry_limit_s = retry_limit_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._client_factory = client_factory or _client

    def list_parts(self) -> list[str]:
        """Every worker can write every partition; Bytewax gives each to exactly one."""
        return [f"mongo-{i:02d}" for i in range(SINK_PARTITIONS)]

    def part_fn(self, item_key: str) -> int:
        """Route by business, stably across processes (crc32, not ``hash``)."""
        return zlib.crc32(item_key.encode())

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _MongoWriter:
        """Connect (and fail fast if the server is unreachable)."""
        client = self._client_factory(self._uri)
        db = client[self._database]
        writer = _MongoWriter(client, db, self._retry_limit_s, self._sleep, self._monotonic)
        writer.with_retries("ensure_indexes", lambda: ensure_indexes(db))
        return writer


def _client(uri: str) -> MongoClient[Doc]:
    return MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, tz_aware=True)


class _MongoWriter(StatefulSinkPartition[Walkthrough, None]):
    """Writes each batch Bytewax hands over before returning.

    Synchronous on purpose: a write must be in MongoDB before Bytewax can commit the epoch that
    produced it, and ``write_batch`` returning is the only point Bytewax 0.21 is known to order
    before the commit (buffering until ``snapshot()`` lost writes under ``kill -9`` in our
    crash test).
    """

    def __init__(
        self,
        client: MongoClient[Doc],
        db: Database[Doc],
        retry_limit_s: float,
        sleep: Sleeper,
        monotonic: Callable[[], float],
    ) -> None:
        self._client = client
        self._db = db
        self._retry_limit_s = retry_limit_s
        self._sleep = sleep
        self._monotonic = monotonic

    def write_batch(self, values: list[Walkthrough]) -> None:
        metrics.SINK_BATCH_SIZE.labels("mongo").observe(len(values))
        started = time.monotonic()
        written = self.with_retries(
            "write_walkthroughs", lambda: write_walkthroughs(self._db, values)
        )
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        log.debug(
            "mongo_batch",
            extra={"fields": {"count": len(values), "written": written, "elapsed_ms": elapsed_ms}},
        )

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._client.close()

    def with_retries(self, what: str, action: Callable[[], Any]) -> Any:
        """Run an idempotent action, retrying transient errors with capped backoff."""
        deadline = self._monotonic() + self._retry_limit_s
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except TRANSIENT as exc:
                if self._monotonic() + delay > deadline:
                    msg = (
                        f"MongoDB unavailable for {self._retry_limit_s:.0f}s during {what} "
                        f"({attempt} attempts): {type(exc).__name__}; stopping so recovery replays"
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
            except (OperationFailure, PyMongoError):
                raise  # not transient: a bug or a misconfiguration, crash loudly
