"""The dataflow: Bytewax wiring only. Every decision is made in codec, claims and attribution.

    read_inputs -> decode -> split_bad_records -> split_walkins
        walk-ins -> claim_walkin_ids (per id shard, marks reused ids) -> key_by_customer
        + messages + erasure requests -> attribute (per customer shard) -> split_decisions
        walkthroughs -> write_walkthroughs (Kafka) + write_mongo (by business)
        the rest -> split_late: late, reused -> write_dlq (with bad records)
                                erased -> tombstone_erased -> write_walkthroughs
                                          + write_mongo (deletes, recounts, older tombstones)

Step ids are part of the recovery format: never rename a stateful or input step without a
migration plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from walkthroughs import metrics
from walkthroughs.attribution import (
    Event,
    Output,
    Rules,
    Shard,
    ShardSnapshot,
    customer_hash,
    finish,
    process_batch,
    shard_of,
)
from walkthroughs.claims import Claims, id_shard
from walkthroughs.clock import NowGetter
from walkthroughs.codec import NO_ALIASES, decode_record
from walkthroughs.config import resumed_window
from walkthroughs.erasure_audit import audit_state
from walkthroughs.erasure_requests import decode_erasure_record
from walkthroughs.schema import (
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


@dataclass(frozen=True)
class Sinks:
    """Where results go, as (key, item) pairs; tests pass ``TestingSink``s.

    Only the MongoDB sink routes by its key; the Kafka sinks write where the item was computed.
    """

    walkthroughs: Sink[tuple[str, Attributed | Tombstone]]  # (state shard, record)
    dead_letters: Sink[tuple[str, DeadLetter]]  # (source topic#partition or state shard, record)
    mongo: Sink[tuple[str, Walkthrough | Erased]] | None  # by business: one writer per business


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

    def decode(origin: Origin) -> tuple[str, Event | DeadLetter]:
        if origin.topic in erasure_topics:
            decoded: Event | DeadLetter = decode_erasure_record(origin)
        else:
            decoded = decode_record(origin, message_topics, timezone_aliases)
        if isinstance(decoded, DeadLetter):
            metrics.DEAD_LETTERS.labels(decoded.reason.value).inc()
            return _by_source(decoded), decoded
        event = decoded[0]
        if isinstance(event, WalkInEvent):  # to the registry of its id first
            return id_shard(event.walkin_id), decoded
        return shard_of(event.business_id, event.customer_id), decoded

    def build_logic(resume: object | None) -> AttributeLogic:
        shard = Shard.resumed(resume) if resume is not None else Shard()
        shard.window_ns = resumed_window(shard.window_ns, rules.window_ns)  # or fail start-up
        return AttributeLogic(shard, rules, now_getter, flush_interval_ns)

    def build_claims(resume: object | None) -> ClaimLogic:
        claims = Claims.resumed(resume) if resume is not None else Claims()
        return ClaimLogic(claims, rules.lateness_ns, now_getter)

    flow = Dataflow("walkthroughs")
    raw: Stream[Origin] = op.input("read_inputs", flow, source)
    decoded = op.map("decode", raw, decode)  # (shard, (event, origin)) | (source, DeadLetter)
    checked = op.branch("split_bad_records", decoded, _holds_dead_letter)
    good = cast(Stream[tuple[str, Event]], checked.falses)
    kinds = op.branch("split_walkins", good, _holds_walkin)
    claimed = op.stateful_batch("claim_walkin_ids", kinds.trues, build_claims)
    walkins = op.map("key_by_customer", claimed, _by_customer)  # reused ids too: see ReusedWalkIn
    events = op.merge("merge_events", kinds.falses, walkins)  # (customer shard, (event, origin))
    results = op.stateful_batch("attribute", events, build_logic)  # (shard, Output)
    decisions = op.branch("split_decisions", results, _holds_walkthrough)
    attributed = cast(Stream[tuple[str, Attributed]], decisions.trues)
    late = op.branch("split_late", decisions.falses, _holds_dead_letter)  # the rare ones
    erased = cast(Stream[tuple[str, Erased]], late.falses)
    dead = op.merge("merge_dead_letters", checked.trues, late.trues)
    op.output("write_dlq", cast(Stream[tuple[str, DeadLetter]], dead), sinks.dead_letters)
    # Tombstones of what state held go through the walkthroughs' own producer, after them.
    # Ghosts' ids may belong to another customer by now: MongoDB knows (see ``schema.Erased``).
    tombstones = op.flat_map(
        "tombstone_erased", erased, partial(_tombstones, with_ghosts=sinks.mongo is None)
    )
    to_topic = op.merge("merge_topic_records", attributed, tombstones)
    op.output("write_walkthroughs", to_topic, sinks.walkthroughs)
    if sinks.mongo is not None:
        by_business = op.map("key_by_business", attributed, _by_business)  # (business, Walkthrough)
        erasures = op.map("key_erasures_by_business", erased, _erasure_by_business)
        to_mongo = op.merge("merge_mongo_writes", by_business, erasures)
        op.output("write_mongo", to_mongo, sinks.mongo)
    return flow


class AttributeLogic(StatefulBatchLogic[Event, Output, object]):
    """Adapter from Bytewax's stateful callbacks to one ``Shard`` of the pure logic."""

    def __init__(self, shard: Shard, rules: Rules, now: NowGetter, flush_interval_ns: int) -> None:
        self._shard = shard
        self._rules = rules
        self._now = now
        self._flush_ns = flush_interval_ns
        self._reported = (0, 0, 0)  # (customers, messages, walk-ins) last added to the gauges

    def on_batch(self, values: list[Event]) -> tuple[list[Output], bool]:
        """Apply the batch's events, then whatever fell due meanwhile."""
        now = self._now()
        out = process_batch(self._shard, values, now, self._rules)
        return self._measured(out, now), self._discard()

    def on_notify(self) -> tuple[list[Output], bool]:
        """Decide and let go of what is due."""
        now = self._now()
        out = process_batch(self._shard, (), now, self._rules)
        return self._measured(out, now), self._discard()

    def on_eof(self) -> tuple[list[Output], bool]:
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
    def _measured(out: list[Output], now_ns: int) -> list[Output]:
        """Count the batch's outputs: counters once per batch, latency once per decision."""
        revisions = dead = late = erasures = 0
        observe = metrics.DECISION_LATENCY.observe
        for item in out:
            if isinstance(item, Attributed):
                revisions += item.revision
                if item.at_decision:
                    observe((now_ns - item.read_at_ns) / NS)
            elif isinstance(item, DeadLetter):
                dead += 1
                late += item.reason is Reason.LATE
                metrics.DEAD_LETTERS.labels(item.reason.value).inc()
            else:
                erasures += 1
                audit_state(item, now_ns)
        if late:
            metrics.LATE_EVENTS.inc(late)
        if len(out) > dead + revisions + erasures:
            metrics.EMITTED_FIRST.inc(len(out) - dead - revisions - erasures)
        if revisions:
            metrics.EMITTED_REVISION.inc(revisions)
        return out


class ClaimLogic(StatefulBatchLogic[Event, Event, dict[str, int]]):
    """Adapter from Bytewax's stateful callbacks to one ``Claims`` shard of walk-in ids."""

    def __init__(self, claims: Claims, keep_ns: int, now: NowGetter) -> None:
        self._claims = claims
        self._keep_ns = keep_ns
        self._now = now

    def on_batch(self, values: list[Event]) -> tuple[list[Event], bool]:
        """Pass each walk-in on to its customer, marked ``ReusedWalkIn`` if its id is another's.

        The customer's shard dead-letters a reused one, or drops it if the customer was erased:
        only that shard knows.
        """
        now = self._now()
        claim = self._claims.claim
        out: list[Event] = []
        for item in values:
            walkin = cast(WalkInEvent, item[0])
            owner = customer_hash(walkin.business_id, walkin.customer_id)
            if claim(walkin.walkin_id, owner, now, self._keep_ns):
                out.append(item)
            else:
                out.append((ReusedWalkIn(*walkin), item[1]))
        return out, False

    def on_notify(self) -> tuple[list[Event], bool]:
        """Forget the claims that expired; discard the shard once none is left."""
        self._claims.sweep(self._now())
        return [], not len(self._claims)

    def on_eof(self) -> tuple[list[Event], bool]:
        """Keep the claims: a later run with recovery still needs them."""
        return [], False

    def notify_at(self) -> datetime | None:
        """Wake for the next sweep."""
        due = self._claims.next_sweep_ns()
        return None if due is None else datetime.fromtimestamp(due / NS, UTC)

    def snapshot(self) -> dict[str, int]:
        """Return the claims as of now (a copy: later batches cannot alter it)."""
        return self._claims.snapshot()


def _holds_walkthrough(item: tuple[str, object]) -> bool:
    return isinstance(item[1], Attributed)


def _tombstones(item: tuple[str, Erased], *, with_ghosts: bool) -> list[tuple[str, Tombstone]]:
    erased = item[1]
    ids = (*erased.walkin_ids, *erased.ghost_ids) if with_ghosts else erased.walkin_ids
    return [(item[0], Tombstone(walkin_id)) for walkin_id in ids]


def _erasure_by_business(item: tuple[str, Erased]) -> tuple[str, Erased]:
    return item[1].business_id, item[1]


def _holds_dead_letter(item: tuple[str, object]) -> bool:
    return isinstance(item[1], DeadLetter)


def _holds_walkin(item: tuple[str, Event]) -> bool:
    return isinstance(item[1][0], WalkInEvent)


def _by_customer(item: tuple[str, Event]) -> tuple[str, Event]:
    walkin = item[1][0]
    return shard_of(walkin.business_id, walkin.customer_id), item[1]


def _by_source(dead: DeadLetter) -> str:
    return f"{dead.origin.topic}#{dead.origin.partition}"


def _by_business(item: tuple[str, Attributed]) -> tuple[str, Walkthrough]:
    walkthrough = item[1].walkthrough
    return walkthrough.business_id, walkthrough
