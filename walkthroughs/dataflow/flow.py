"""The dataflow: Bytewax wiring only. Every decision is made in codec, claims and attribution.

    read_inputs -> decode (a poll at a time, one parcel per destination)
    -> sort: bad records | walk-ins | messages and erasure requests
       walk-ins -> claim_walkin_ids (per id route, marks reused ids)
                -> carry_to_customers (one bundle per worker) -> key_by_customer
    -> attribute (per customer route, walk-ins with the rest)
    -> sort_results: walkthroughs | late and reused (-> write_dlq, with bad records) | erased
    -> topic_records (walkthroughs, then tombstones of the erased) -> write_walkthroughs
    -> mongo_writes (by sink partition: documents, deletes, recounts) -> write_mongo

The stages (``sort``, ``sort_results``, ``topic_records``, ``mongo_writes``) are composite
operators of stateless steps only: a step in a composite gets the composite's id in its own,
and the ids of stateful and I/O steps are part of the recovery format
(``tests/flow/test_step_ids.py``).

What moves between steps are parcels (``walkthroughs.dataflow.parcels``): Bytewax's cost is paid per
item, so each step hands on one item per destination and batch, not one per event. An event
crosses to another worker at most twice (a walk-in: to its id's registry, then, in a bundle
per worker, to its customer's; a message or an erasure request: to its customer's), and a
walkthrough once more with MongoDB on (to its sink partition). ``count_workers`` reads nothing:
it is how the flow learns the worker count the bundles need (``Cluster``), and where each worker
thread keeps its Python thread state (``thread_state``).

Step ids are part of the recovery format: never rename a stateful or input step without a
migration plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from typing import Any, TypeGuard, TypeVar, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import DynamicSource, Source, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from walkthroughs.attribution import (
    Output,
    Rules,
    Shard,
    ShardSnapshot,
    customer_hash,
    finish,
    process_batch,
    shard_of,
    shard_of_hash,
)
from walkthroughs.attribution.claims import Claims, ClaimsSnapshot, id_shard
from walkthroughs.dataflow.parcels import (
    Bundle,
    DeadLetters,
    Decisions,
    Documents,
    Erasures,
    Events,
    Parcel,
    Tombstones,
    Walkins,
)
from walkthroughs.dataflow.thread_state import keep_thread_state
from walkthroughs.runtime import metrics
from walkthroughs.runtime.clock import NowGetter
from walkthroughs.runtime.config import resumed_window
from walkthroughs.runtime.erasure_audit import audit_state
from walkthroughs.sinks.partitions import partition_of
from walkthroughs.utils.routes import NAMES as ROUTE_NAMES
from walkthroughs.utils.routes import carriers, worker_of
from walkthroughs.wire.codec import NO_ALIASES, decode_record
from walkthroughs.wire.erasure_requests import decode_erasure_record
from walkthroughs.wire.schema import (
    Attributed,
    DeadLetter,
    Erased,
    Origin,
    Reason,
    ReusedWalkIn,
    Tombstone,
    WalkInEvent,
    Walkthrough,
)

NS = 1_000_000_000
P = TypeVar("P", bound=Parcel)


@dataclass(frozen=True)
class Sinks:
    """Where results go, as (key, parcel) pairs; tests pass sinks that flatten the parcels.

    Only the MongoDB sink routes by its key; the Kafka sinks write where the parcel was made.
    """

    walkthroughs: Sink[tuple[str, list[Attributed | Tombstone]]]  # (state route, parcel)
    dead_letters: Sink[tuple[str, list[DeadLetter]]]  # (source topic#partition or route, ...)
    mongo: Sink[tuple[str, list[Walkthrough | Erased]]] | None  # (sink partition, ...)


def build_flow(
    *,
    source: Source[Origin],
    sinks: Sinks,
    message_topics: frozenset[str],
    rules: Rules,
    flush_interval_ns: int,
    now_getter: NowGetter,
    erasure_topics: frozenset[str] = frozenset(),
    timezone_aliases: Mapping[str, str] = NO_ALIASES,
) -> Dataflow:
    """Assemble the dataflow; every collaborator is injected."""

    def build_logic(resume: object | None) -> AttributeLogic:
        shard = Shard.resumed(resume) if resume is not None else Shard()
        shard.window_ns = resumed_window(shard.window_ns, rules.window_ns)  # or fail start-up
        return AttributeLogic(shard, rules, now_getter, flush_interval_ns)

    cluster = Cluster()

    def build_claims(resume: object | None) -> ClaimLogic:
        claims = Claims.resumed(resume) if resume is not None else Claims()
        return ClaimLogic(claims, rules.lateness_ns, now_getter, cluster)

    flow = Dataflow("walkthroughs")
    op.input("count_workers", flow, WorkerCount(cluster))  # reads nothing; see Cluster
    raw: Stream[Origin] = op.input("read_inputs", flow, source)
    decode = _decoder(message_topics, erasure_topics, timezone_aliases)
    decoded = sort_decoded("sort", op.flat_map_batch("decode", raw, decode))
    claimed = op.stateful_batch("claim_walkin_ids", decoded.walkins, build_claims)
    bundles = op.map("key_by_worker", claimed, _forwarded)  # (carrier, Bundle)
    carried = op.stateful_batch("carry_to_customers", bundles, _carry)  # to the routes' worker
    walkins = op.flat_map("key_by_customer", carried, _unbundled)  # reused ids too: ReusedWalkIn
    events = op.merge("merge_events", decoded.events, walkins)  # (customer route, Events)
    results = sort_results("sort_results", op.stateful_batch("attribute", events, build_logic))
    op.output(
        "write_dlq", op.merge("merge_dead_letters", decoded.bad, results.late), sinks.dead_letters
    )
    ghosts = sinks.mongo is None
    to_topic = topic_records("topic_records", results.decisions, results.erased, ghosts)
    op.output("write_walkthroughs", to_topic, sinks.walkthroughs)
    if sinks.mongo is not None:
        to_mongo = mongo_writes("mongo_writes", results.decisions, results.erased)
        op.output("write_mongo", to_mongo, sinks.mongo)
    return flow


@dataclass(frozen=True)
class Decoded:
    """What ``decode`` made, by destination."""

    bad: Stream[tuple[str, DeadLetters]]  # by source partition, to the DLQ
    walkins: Stream[tuple[str, Walkins]]  # by id route, to the walk-in id registry
    events: Stream[tuple[str, Events]]  # messages and erasure requests, by customer route


@operator
def sort_decoded(step_id: str, up: Stream[tuple[str, Parcel]]) -> Decoded:
    """Bad records apart, then walk-ins apart from the customers' other events."""
    checked = op.branch("split_bad_records", up, _holds(DeadLetters))
    kinds = op.branch("split_walkins", checked.falses, _holds(Walkins))
    return Decoded(checked.trues, kinds.trues, _the_rest(kinds.falses, Events))


@dataclass(frozen=True)
class Results:
    """What ``attribute`` made, by kind."""

    decisions: Stream[tuple[str, Decisions]]  # walkthroughs, first and revised
    late: Stream[tuple[str, DeadLetters]]  # late events and reused walk-in ids: the rare ones
    erased: Stream[tuple[str, Erasures]]  # what erasures removed from state


@operator
def sort_results(step_id: str, up: Stream[tuple[str, Parcel]]) -> Results:
    """Walkthroughs apart, then dead letters apart from erasure reports."""
    decisions = op.branch("split_decisions", up, _holds(Decisions))
    late = op.branch("split_late", decisions.falses, _holds(DeadLetters))
    return Results(decisions.trues, late.trues, _the_rest(late.falses, Erasures))


@operator
def topic_records(
    step_id: str,
    decisions: Stream[tuple[str, Decisions]],
    erased: Stream[tuple[str, Erasures]],
    with_ghosts: bool,
) -> Stream[tuple[str, Decisions | Tombstones]]:
    """Walkthroughs, then tombstones of what erasures removed, for the output topic.

    Tombstones go through the walkthroughs' own producer, after them. Ghosts' ids may belong to
    another customer by now: without MongoDB to ask, they are tombstoned here; with it, the
    MongoDB sink knows (see ``schema.Erased``).
    """
    tombstones = op.map("tombstone_erased", erased, partial(_tombstones, with_ghosts=with_ghosts))
    return op.merge("merge_topic_records", decisions, tombstones)


@operator
def mongo_writes(
    step_id: str, decisions: Stream[tuple[str, Decisions]], erased: Stream[tuple[str, Erasures]]
) -> Stream[tuple[str, Documents | Erasures]]:
    """Walkthroughs and erasures, by MongoDB sink partition (one writer per business)."""
    by_business = op.flat_map("key_by_business", decisions, _documents_by_partition)
    erasures = op.flat_map("key_erasures_by_business", erased, _erasures_by_partition)
    return op.merge("merge_mongo_writes", by_business, erasures)


def _the_rest(stream: Stream[tuple[str, Parcel]], kind: type[P]) -> Stream[tuple[str, P]]:
    """The falses of the last branch of a split: by then, only ``kind`` is left.

    A branch's predicate narrows its trues, not its falses; this says what the falses hold.
    """
    del kind  # the type is for the checker; the branches before made it so
    return cast(Stream[tuple[str, P]], stream)


def _decoder(
    message_topics: frozenset[str],
    erasure_topics: frozenset[str],
    timezone_aliases: Mapping[str, str],
) -> Callable[[list[Origin]], list[tuple[str, Parcel]]]:
    """The decode step: a poll's records in, one parcel per destination out."""

    def decode(origins: list[Origin]) -> list[tuple[str, Parcel]]:
        """Decode what one poll delivered; one parcel per destination."""
        parcels: dict[tuple[type[Parcel], str], Parcel] = {}
        for origin in origins:
            if origin.topic in erasure_topics:
                decoded: Any = decode_erasure_record(origin)
            else:
                decoded = decode_record(origin, message_topics, timezone_aliases)
            if decoded.__class__ is DeadLetter:
                metrics.DEAD_LETTERS.labels(decoded.reason.value).inc()
                to: tuple[type[Parcel], str] = (DeadLetters, _by_source(decoded))
            else:
                event = decoded[0]
                if event.__class__ is WalkInEvent:  # to the registry of its id first
                    to = (Walkins, id_shard(event.walkin_id))
                else:
                    to = (Events, shard_of(event.business_id, event.customer_id))
            parcel = parcels.get(to)
            if parcel is None:
                parcel = parcels[to] = to[0]()
            parcel.append(decoded)
        return [(key, parcel) for (_, key), parcel in parcels.items()]

    return decode


class AttributeLogic(StatefulBatchLogic[Events, Parcel, object]):
    """Adapter from Bytewax's stateful callbacks to one ``Shard`` of the pure logic."""

    def __init__(self, shard: Shard, rules: Rules, now: NowGetter, flush_interval_ns: int) -> None:
        self._shard = shard
        self._rules = rules
        self._now = now
        self._flush_ns = flush_interval_ns
        self._reported = (0, 0, 0)  # (customers, messages, walk-ins) last added to the gauges

    def on_batch(self, values: list[Events]) -> tuple[list[Parcel], bool]:
        """Apply the parcels' events, then whatever fell due meanwhile."""
        now = self._now()
        events = values[0] if len(values) == 1 else chain.from_iterable(values)
        out = process_batch(self._shard, events, now, self._rules)
        return self._measured(out, now), self._discard()

    def on_notify(self) -> tuple[list[Parcel], bool]:
        """Decide and let go of what is due."""
        now = self._now()
        out = process_batch(self._shard, (), now, self._rules)
        return self._measured(out, now), self._discard()

    def on_eof(self) -> tuple[list[Parcel], bool]:
        """Make every pending first decision (input ended: bounded mode)."""
        now = self._now()
        return self._measured(finish(self._shard, now, self._rules), now), self._discard()

    def notify_at(self) -> datetime | None:
        """Wake at the next deadline, rounded up to the flush grid so timers fire together."""
        deadline = self._shard.next_deadline_ns()
        if deadline is None:
            return None
        aligned = -(-deadline // self._flush_ns) * self._flush_ns
        return datetime.fromtimestamp(aligned / NS, UTC)

    def snapshot(self) -> ShardSnapshot:
        """Return the shard as of now: later callbacks cannot alter a snapshot in flight."""
        snapshot = self._shard.snapshot()
        self._report_state((len(self._shard), *snapshot.retained))
        return snapshot

    def _discard(self) -> bool:
        if self._shard.suppressed:
            metrics.ERASED_EVENTS_DROPPED.inc(self._shard.suppressed)
            self._shard.suppressed = 0
        if not self._shard.is_empty():
            return False
        self._report_state((0, 0, 0))
        return True

    def _report_state(self, now: tuple[int, int, int]) -> None:
        """Move the process-wide state gauges by this shard's change since it last reported."""
        gauges = (metrics.STATE_CUSTOMERS, metrics.STATE_MESSAGES, metrics.STATE_WALKINS)
        for gauge, new, old in zip(gauges, now, self._reported, strict=True):
            if new != old:
                gauge.inc(new - old)
        self._reported = now

    @staticmethod
    def _measured(out: list[Output], now_ns: int) -> list[Parcel]:
        """Put the batch's outputs in parcels by kind, and count them.

        Counters move once per batch; latency is observed once per read time of the first
        decisions (walk-ins read in one batch share it), with how many there were.
        """
        if not out:
            return []
        decisions, dead, erasures = Decisions(), DeadLetters(), Erasures()
        revisions = late = 0
        read_times: dict[int, int] = {}  # read_at_ns -> first decisions of walk-ins read then
        for item in out:
            if item.__class__ is Attributed:
                decisions.append(item)
                revisions += item.revision
                if item.at_decision:
                    read_at = item.read_at_ns
                    read_times[read_at] = read_times.get(read_at, 0) + 1
            elif item.__class__ is DeadLetter:
                dead.append(item)
                late += item.reason is Reason.LATE
                metrics.DEAD_LETTERS.labels(item.reason.value).inc()
            else:
                erasures.append(item)
                audit_state(cast(Erased, item), now_ns)
        for read_at, count in read_times.items():
            metrics.DECISION_LATENCY.observe((now_ns - read_at) / NS, count)
        if late:
            metrics.LATE_EVENTS.inc(late)
        if len(decisions) > revisions:
            metrics.EMITTED_FIRST.inc(len(decisions) - revisions)
        if revisions:
            metrics.EMITTED_REVISION.inc(revisions)
        return [parcel for parcel in (decisions, dead, erasures) if parcel]


class Cluster:
    """How many workers run the dataflow, and the key that reaches each (``routes.carriers``).

    Walk-ins leave a claim route for all 48 customer routes: a parcel per route would hold a
    few walk-ins each, and Bytewax's cost is per item. So they leave in one bundle per worker,
    keyed by that worker's carrier, and reach their routes from there without crossing again.
    Bytewax tells sources the worker count when it builds them, before any item moves:
    ``WorkerCount`` learns it for the flow.
    """

    def __init__(self) -> None:
        self.workers = 0
        self._carrier_of: dict[str, str] = {}

    def learn(self, workers: int) -> None:
        """Take the worker count (every worker of the process says the same)."""
        if workers != self.workers:
            keys = carriers(workers)
            self._carrier_of = {r: keys[worker_of(r, workers)] for r in ROUTE_NAMES}
            self.workers = workers

    def carrier_of(self, route: str) -> str:
        """The key that takes a bundle to the worker holding ``route``."""
        try:
            return self._carrier_of[route]
        except KeyError:
            msg = f"no worker known for route {route!r}: count_workers was never built"
            raise RuntimeError(msg) from None


class WorkerCount(DynamicSource[None]):
    """An input that reads nothing: its ``build`` runs once on every worker thread, first.

    That is how the flow learns the worker count, and where the worker thread is told to keep
    its Python thread state (``thread_state``).
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _NothingToRead:
        """Tell the cluster how many workers there are; keep this thread's Python state."""
        keep_thread_state()
        self._cluster.learn(worker_count)
        return _NothingToRead()


class _NothingToRead(StatelessSourcePartition[None]):
    def next_batch(self) -> list[None]:
        raise StopIteration


class ClaimLogic(StatefulBatchLogic[Walkins, tuple[str, Bundle], ClaimsSnapshot]):
    """Adapter from Bytewax's stateful callbacks to one ``Claims`` route of walk-in ids."""

    def __init__(self, claims: Claims, keep_ns: int, now: NowGetter, cluster: Cluster) -> None:
        self._claims = claims
        self._keep_ns = keep_ns
        self._now = now
        self._cluster = cluster

    def on_batch(self, values: list[Walkins]) -> tuple[list[tuple[str, Bundle]], bool]:
        """Pass each walk-in on to its customer, marked ``ReusedWalkIn`` if its id is another's.

        The customer's shard dead-letters a reused one, or drops it if the customer was erased:
        only that shard knows. One parcel per customer route, one bundle per worker (``Cluster``).
        """
        now = self._now()
        claim = self._claims.claim
        keep_ns = self._keep_ns
        routed: dict[str, Events] = {}
        for read in chain.from_iterable(values):
            walkin = read[0]
            business_id, customer_id = walkin.business_id, walkin.customer_id
            owner = customer_hash(business_id, customer_id)
            item = (
                read
                if claim(walkin.walkin_id, owner, now, keep_ns)
                else (ReusedWalkIn(*walkin), read[1])
            )
            route = shard_of_hash(owner)  # the same hash places the customer's state
            parcel = routed.get(route)
            if parcel is None:
                routed[route] = Events((item,))
            else:
                parcel.append(item)
        bundles: dict[str, Bundle] = {}
        carrier_of = self._cluster.carrier_of
        for route, parcel in routed.items():
            carrier = carrier_of(route)
            bundle = bundles.get(carrier)
            if bundle is None:
                bundles[carrier] = Bundle(((route, parcel),))
            else:
                bundle.append((route, parcel))
        return list(bundles.items()), False

    def on_notify(self) -> tuple[list[tuple[str, Bundle]], bool]:
        """Forget the claims that expired; discard the route once none is left."""
        self._claims.sweep(self._now())
        return [], not len(self._claims)

    def on_eof(self) -> tuple[list[tuple[str, Bundle]], bool]:
        """Keep the claims: a later run with recovery still needs them."""
        return [], False

    def notify_at(self) -> datetime | None:
        """Wake for the next sweep."""
        due = self._claims.next_sweep_ns()
        return None if due is None else datetime.fromtimestamp(due / NS, UTC)

    def snapshot(self) -> ClaimsSnapshot:
        """Return the claims as of now (a copy: later batches cannot alter it)."""
        return self._claims.snapshot()


def _holds(kind: type[P]) -> Callable[[tuple[str, Parcel]], TypeGuard[tuple[str, P]]]:
    """A branch predicate: whether the item's parcel is a ``kind``."""

    def holds(item: tuple[str, Parcel]) -> TypeGuard[tuple[str, P]]:
        return item[1].__class__ is kind

    return holds


def _forwarded(item: tuple[str, tuple[str, Bundle]]) -> tuple[str, Bundle]:
    """A claim route's bundle, keyed by the carrier of the worker it is for."""
    return item[1]


class _Carry(StatefulBatchLogic[Bundle, Bundle, None]):
    """Passes bundles on, on the worker its carrier key reached; holds nothing."""

    def on_batch(self, values: list[Bundle]) -> tuple[list[Bundle], bool]:
        return values, True

    def snapshot(self) -> None:
        return None


def _carry(resume: object | None) -> _Carry:
    return _Carry()


def _unbundled(item: tuple[str, Bundle]) -> Bundle:
    """A bundle's ``(customer route, Events)`` parcels, for the attribute step (same worker)."""
    return item[1]


def _tombstones(item: tuple[str, Erasures], *, with_ghosts: bool) -> tuple[str, Tombstones]:
    ids: Iterable[str] = chain.from_iterable(
        (*erased.walkin_ids, *erased.ghost_ids) if with_ghosts else erased.walkin_ids
        for erased in item[1]
    )
    return item[0], Tombstones(Tombstone(walkin_id) for walkin_id in ids)


def _documents_by_partition(item: tuple[str, Decisions]) -> list[tuple[str, Documents]]:
    """A route's walkthroughs, one parcel per MongoDB sink partition (by business)."""
    routed: dict[str, Documents] = {}
    for attributed in item[1]:
        walkthrough: Walkthrough = attributed.walkthrough
        part = partition_of(walkthrough.business_id)
        parcel = routed.get(part)
        if parcel is None:
            routed[part] = Documents((walkthrough,))
        else:
            parcel.append(walkthrough)
    return list(routed.items())


def _erasures_by_partition(item: tuple[str, Erasures]) -> list[tuple[str, Erasures]]:
    return [(partition_of(erased.business_id), Erasures((erased,))) for erased in item[1]]


def _by_source(dead: DeadLetter) -> str:
    return f"{dead.origin.topic}#{dead.origin.partition}"
