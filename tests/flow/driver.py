"""A broker-less driver for the real dataflow: our "TopologyTestDriver".

``FlowDriver.run`` builds ``walkthroughs.dataflow.flow.build_flow`` exactly as ``app.py`` does,
but with a ``TestingSource`` that plays a *script*, ``TestingSink``s for every sink of
``Sinks``, and an injected clock the script moves. Everything runs in-process, under ``run_main`` or
``cluster_main`` with 2 worker threads (``Engine``), with or without a recovery store.

How time is made deterministic without sleeping:

* **Processing time is the script's.** The dataflow reads only ``Clock`` (a ``NowGetter``); the
  script's ``At`` steps move it when the source reaches them. Nothing waits on the wall clock.
* **Bytewax's timers are always due.** ``AttributeLogic.notify_at`` turns the next deadline of
  the injected clock into a ``datetime``, and Bytewax compares that with the *system* clock.
  Processing time starts at ``T0``, in 2001, so every timer Bytewax is given has long passed:
  Bytewax wakes the stateful steps at every step of the worker loop, and ``on_notify`` decides
  with the injected clock alone. (A clock in the future would make timers wait for real time.)
  The price: every key with a timer gets ``on_notify`` at every step (hundreds of thousands of
  calls for a few hundred records one at a time with 2 workers), so scripts of generated
  traffic go in batches of 16 or more; scripts of a few customers can go one record a batch.
* **One batch at a time.** The epoch interval is zero, so each source batch is an epoch of its
  own, and Bytewax reads the next batch only once the probe shows every output of the previous
  epochs is written. A script step therefore sees the effect of every step before it, and the
  records written between two polls of the source belong to one batch (``FlowDriver.batches``).
* **Empty batches are flush ticks.** ``Flush`` and ``Until`` yield ``TestingSource.PAUSE`` of
  zero length: an empty batch with no wall-clock wait, so the stateful steps get activations
  (and run their due timers) while the input stays open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TypeVar, cast

from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSource, cluster_main, run_main

from tests.reference import expected_walkthroughs
from walkthroughs.attribution import Rules, shard_of
from walkthroughs.dataflow.flow import Sinks, build_flow
from walkthroughs.runtime.clock import FakeClock
from walkthroughs.sinks.partitions import partition_of
from walkthroughs.tools.traffic import Traffic
from walkthroughs.wire.codec import encode_message, encode_walkin, local_date
from walkthroughs.wire.erasure_requests import encode_request
from walkthroughs.wire.schema import (
    Attributed,
    Channel,
    DeadLetter,
    Erased,
    MessageEvent,
    Origin,
    Reason,
    Tombstone,
    WalkInEvent,
    Walkthrough,
)

T = TypeVar("T")

S = 1_000_000_000
MINUTE, HOUR, DAY = 60 * S, 3600 * S, 86400 * S
T0 = 1_000_000_000 * S
"""2001-09-09T01:46:40Z: where processing time starts (far in the wall-clock past, see above);
also a convenient event time (valid events lie in years 2000-2100)."""

WINDOW, HOLD, LATENESS, FLUSH = 7 * DAY, 30 * S, DAY, 5 * S  # the service's defaults
MESSAGES, WALKINS, ERASURES = "zr-messages", "walkins", "walkthroughs-erasures"
MESSAGE_TOPICS = frozenset({MESSAGES, "zr-messages-backfill"})
NO_WAIT = timedelta(0)


def make_rules(window_ns: int = WINDOW, hold_ns: int = HOLD, lateness_ns: int = LATENESS) -> Rules:
    """The attribution timing; with ``state_key``, the one place these tests import from
    ``walkthroughs.attribution`` (it is moving)."""
    return Rules(window_ns=window_ns, hold_ns=hold_ns, lateness_ns=lateness_ns)


def state_key(business_id: str, customer_id: str) -> str:
    """The state key (route) that holds a customer: what the attribute step's outputs carry."""
    return shard_of(business_id, customer_id)


def mongo_key(business_id: str) -> str:
    """The MongoDB sink partition that writes a business: what its parcels are keyed by."""
    return partition_of(business_id)


class Unpacking(DynamicSink[tuple[str, list[T]]]):
    """A ``TestingSink`` for parcels: ``(key, record)`` for every record, in the order written.

    The dataflow hands its sinks one parcel per destination and batch
    (``walkthroughs.dataflow.parcels``); the tests look at records.
    """

    def __init__(self, written: list[tuple[str, T]]) -> None:
        self._written = written

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _UnpackingPart[T]:
        return _UnpackingPart(self._written)


class _UnpackingPart(StatelessSinkPartition[tuple[str, list[T]]]):
    def __init__(self, written: list[tuple[str, T]]) -> None:
        self._written = written

    def write_batch(self, items: list[tuple[str, list[T]]]) -> None:
        self._written.extend((key, record) for key, parcel in items for record in parcel)


# ---------------------------------------------------------------------------------------------
# Input records
# ---------------------------------------------------------------------------------------------


class Inputs:
    """Builds the ``Origin`` records the Kafka source would emit, and remembers the valid events.

    Offsets count per topic as Kafka's would; ``events`` is what the reference rule is applied
    to (bad records are not events).
    """

    def __init__(self) -> None:
        self._offsets: Counter[str] = Counter()
        self.events: list[MessageEvent | WalkInEvent] = []
        self.erased: set[tuple[str, str]] = set()  # within the horizon: their events are dropped

    def raw(self, topic: str, value: bytes | None, key: bytes | None = b"bad") -> Origin:
        """A record with exactly these bytes (a bad one, or a re-delivery)."""
        offset = self._offsets[topic]
        self._offsets[topic] += 1
        return Origin(topic, 0, offset, key, value)

    def message(
        self,
        message_id: str,
        business_id: str,
        customer_id: str,
        sent_at_ns: int,
        *,
        channel: Channel = Channel.EMAIL,
        campaign_id: str = "",
        topic: str = MESSAGES,
    ) -> Origin:
        """A valid marketing message, encoded as its producer would."""
        event = MessageEvent(message_id, business_id, customer_id, sent_at_ns, channel, campaign_id)
        return self.event(event, topic=topic)

    def walkin(
        self,
        walkin_id: str,
        business_id: str,
        customer_id: str,
        started_at_ns: int,
        *,
        location_id: str = "",
        timezone: str = "",
        topic: str = WALKINS,
    ) -> Origin:
        """A valid walk-in, encoded as its producer would (its local date from ``timezone``)."""
        date = local_date(started_at_ns, timezone)
        event = WalkInEvent(walkin_id, business_id, customer_id, location_id, started_at_ns, date)
        return self.event(event, timezone=timezone, topic=topic)

    def event(
        self, event: MessageEvent | WalkInEvent, *, timezone: str = "", topic: str | None = None
    ) -> Origin:
        """The record of an event (keyed like its producer: message id, or location)."""
        if (event.business_id, event.customer_id) not in self.erased:
            self.events.append(event)
        if isinstance(event, MessageEvent):
            value, key = encode_message(event), event.message_id.encode()
            return self.raw(topic or MESSAGES, value, key)
        value = encode_walkin(event, timezone=timezone)
        return self.raw(topic or WALKINS, value, event.location_id.encode())

    def erasure(self, business_id: str, customer_id: str, requested_at_ns: int = T0) -> Origin:
        """A request to erase the customer, as ``python -m walkthroughs erase`` writes it.

        The customer's events leave the reference (``expected``), those so far and those to
        come (within the horizon, they are dropped): nothing of it may be left, and everyone
        else must still be exact.
        """
        self.erased.add((business_id, customer_id))
        at = datetime.fromtimestamp(requested_at_ns / S, UTC)
        key, value = encode_request(business_id, customer_id, at, "test")
        self.events = [
            e for e in self.events if (e.business_id, e.customer_id) != (business_id, customer_id)
        ]
        return self.raw(ERASURES, value, key)

    def again(self, record: Origin) -> Origin:
        """The same record delivered once more (at-least-once producers): a new offset."""
        return self.raw(record.topic, record.value, record.key)

    def traffic(self, sample: Traffic) -> list[Origin]:
        """Generated traffic as one consumer of both topics reads it: alternating records.

        Its valid events are kept for the reference; its bad records are keyed ``b"bad"``.
        """
        self.events.extend(sample.events)
        messages = [self.raw(MESSAGES, value, key) for key, value in sample.messages]
        walkins = [self.raw(WALKINS, value, key) for key, value in sample.walkins]
        mixed = [r for pair in zip(messages, walkins, strict=False) for r in pair]
        n = len(mixed) // 2
        return [*mixed, *messages[n:], *walkins[n:]]

    def expected(self, window_ns: int = WINDOW) -> dict[str, Walkthrough]:
        """The contract's rule over every valid event so far (``tests/reference.py``)."""
        return expected_walkthroughs(self.events, window_ns)


# ---------------------------------------------------------------------------------------------
# Scripts: what the source plays, and when time moves
# ---------------------------------------------------------------------------------------------


class Clock(FakeClock):
    """The injected processing clock (a ``NowGetter``), moved only by the script."""

    def advance_to(self, at_ns: int) -> None:
        """Move to ``at_ns`` unless already past it: replaying a script never moves time back."""
        self.now_ns = max(self.now_ns, at_ns)


@dataclass(frozen=True)
class At:
    """Set processing time to ``at_ns`` when the source reaches this step (idempotent)."""

    at_ns: int


@dataclass(frozen=True)
class Do:
    """Run ``action`` when the source reaches this step (e.g. look at the sinks so far)."""

    action: Callable[[], None]


@dataclass(frozen=True)
class Flush:
    """An empty batch: the stateful steps run their due timers before the next step."""


@dataclass(frozen=True)
class Until:
    """Empty batches until ``done()`` holds; fails the run after ``limit`` polls (no hang)."""

    done: Callable[[], bool]
    what: str
    limit: int = 500


class SimulatedCrashError(RuntimeError):
    """Raised by a ``Crash`` step: the worker panics, as on any unexpected error."""


@dataclass
class Crash:
    """Raise from the source once: every worker stops (what ``ABORT`` cannot do with 2 workers).

    Like ``TestingSource.ABORT``, it triggers once and is skipped when the script is replayed.
    """

    triggered: bool = False


Step = Origin | At | Do | Flush | Until | Crash | TestingSource.EOF | TestingSource.ABORT
SourceItem = Origin | TestingSource.EOF | TestingSource.ABORT | TestingSource.PAUSE


class Script:
    """The source's iterable: ``Origin``s and Bytewax sentinels pass on, other steps act.

    ``TestingSource`` iterates it afresh at every run and skips forward to its resume index, so
    a resumed run replays the steps before that index: ``At`` is idempotent and ``Crash`` fires
    once, but ``Do``, ``Flush`` and ``Until`` are for scripts that do not resume (``PAUSE``
    items are not counted in ``TestingSource``'s resume index).
    """

    def __init__(self, steps: Sequence[Step], clock: Clock, on_poll: Callable[[], None]) -> None:
        self._steps = steps
        self._clock = clock
        self._on_poll = on_poll

    def __iter__(self) -> Iterator[SourceItem]:
        pause = TestingSource.PAUSE(NO_WAIT)
        for step in self._steps:
            if isinstance(step, At):
                self._clock.advance_to(step.at_ns)
            elif isinstance(step, Do):
                step.action()
            elif isinstance(step, Crash):
                if not step.triggered:
                    step.triggered = True
                    msg = "simulated crash"
                    raise SimulatedCrashError(msg)
            elif isinstance(step, Flush):
                yield pause
                self._on_poll()
            elif isinstance(step, Until):
                for _ in range(step.limit):
                    if step.done():
                        break
                    yield pause
                    self._on_poll()
                else:
                    msg = f"still not {step.what} after {step.limit} empty batches"
                    raise AssertionError(msg)
            else:
                yield step
                self._on_poll()  # runs at the next poll: the batch's outputs are written


# ---------------------------------------------------------------------------------------------
# Engines and the driver
# ---------------------------------------------------------------------------------------------

# Untyped in Bytewax's stubs (``_bytewax.pyi``): typed here once.
_run_main = cast(Callable[..., None], run_main)
_cluster_main = cast(Callable[..., None], cluster_main)
_init_db_dir = cast(Callable[[Path, int], None], init_db_dir)
_recovery_config = cast(Callable[[str], RecoveryConfig], RecoveryConfig)


@dataclass(frozen=True)
class Engine:
    """How a dataflow is executed: one worker (``run_main``) or 2 threads (``cluster_main``)."""

    name: str
    workers: int

    def execute(self, flow: Dataflow, recovery: RecoveryConfig | None) -> None:
        """Run ``flow`` to its end (or its crash), one epoch per source batch."""
        if self.workers == 1:
            _run_main(flow, epoch_interval=NO_WAIT, recovery_config=recovery)
        else:
            _cluster_main(
                flow,
                [],
                0,
                epoch_interval=NO_WAIT,
                recovery_config=recovery,
                worker_count_per_proc=self.workers,
            )


ENGINES = (Engine("run_main", 1), Engine("cluster_main-2w", 2))


def existing_store(directory: Path) -> RecoveryConfig:
    """A recovery store that was made before (``recovery_store``), to resume from."""
    return _recovery_config(str(directory))


def recovery_store(directory: Path, partitions: int = 1) -> RecoveryConfig:
    """A fresh recovery store (``bytewax.recovery``), kept across the runs of one test."""
    directory.mkdir(parents=True, exist_ok=True)
    _init_db_dir(directory, partitions)
    return _recovery_config(str(directory))


@dataclass
class RunOutput:
    """What one run wrote to each sink."""

    walkthroughs: list[tuple[str, Attributed]]
    dead_letters: list[tuple[str, DeadLetter]]
    mongo: list[tuple[str, Walkthrough]]


@dataclass
class FlowDriver:
    """Runs the real dataflow over scripts; the sinks' lists accumulate over runs like topics."""

    engine: Engine
    rules: Rules = field(default_factory=make_rules)
    clock: Clock = field(default_factory=lambda: Clock(T0))
    inputs: Inputs = field(default_factory=Inputs)
    topic: list[tuple[str, Attributed | Tombstone]] = field(default_factory=list)
    dead_letters: list[tuple[str, DeadLetter]] = field(default_factory=list)
    mongo_writes: list[tuple[str, Walkthrough | Erased]] = field(default_factory=list)
    polls: list[int] = field(default_factory=list)  # len(topic) at each source poll

    @property
    def walkthroughs(self) -> list[tuple[str, Attributed]]:
        """The walkthrough records written to the output topic (tombstones left out)."""
        return _walkthroughs(self.topic)

    @property
    def mongo(self) -> list[tuple[str, Walkthrough]]:
        """The walkthroughs handed to the MongoDB sink (erasures left out)."""
        return [(k, w) for k, w in self.mongo_writes if isinstance(w, Walkthrough)]

    def tombstones(self) -> list[str]:
        """The walkin_ids tombstoned on the output topic, in the order written."""
        return [t.walkin_id for _, t in self.topic if isinstance(t, Tombstone)]

    def erasures(self) -> list[Erased]:
        """The erasures handed to the MongoDB sink, in the order written."""
        return [e for _, e in self.mongo_writes if isinstance(e, Erased)]

    def run(
        self,
        steps: Iterable[Step],
        *,
        batch_size: int = 1,
        recovery: RecoveryConfig | None = None,
        crashes: bool = False,
    ) -> RunOutput:
        """Build the flow afresh (a process start), play ``steps``, return this run's output.

        ``crashes``: the script holds a ``Crash`` step, so the run must fail with it.
        """
        marks = (len(self.topic), len(self.dead_letters), len(self.mongo_writes))
        source = TestingSource(Script(list(steps), self.clock, self._poll), batch_size)
        flow = build_flow(
            source=source,
            sinks=Sinks(
                walkthroughs=Unpacking(self.topic),
                dead_letters=Unpacking(self.dead_letters),
                mongo=Unpacking(self.mongo_writes),
            ),
            message_topics=MESSAGE_TOPICS,
            erasure_topics=frozenset({ERASURES}),
            rules=self.rules,
            flush_interval_ns=FLUSH,
            now_getter=self.clock,
        )
        self.polls.append(len(self.topic))
        try:
            self.engine.execute(flow, recovery)
        except Exception as exc:  # Bytewax wraps the source's error in its own
            if not (crashes and _caused_by_crash(exc)):
                raise
        else:
            if crashes:
                msg = "the run was meant to crash"
                raise AssertionError(msg)
        mongo = self.mongo_writes[marks[2] :]
        return RunOutput(
            _walkthroughs(self.topic[marks[0] :]),
            self.dead_letters[marks[1] :],
            [(k, w) for k, w in mongo if isinstance(w, Walkthrough)],
        )

    def _poll(self) -> None:
        self.polls.append(len(self.topic))

    # What the outputs say -------------------------------------------------------------------

    def latest(self) -> dict[str, Walkthrough]:
        """The output topic compacted: the last record written per walkin_id (tombstones
        remove it)."""
        latest: dict[str, Walkthrough] = {}
        for _, record in self.topic:
            if isinstance(record, Tombstone):
                latest.pop(record.walkin_id, None)
            else:
                latest[record.walkthrough.walkin_id] = record.walkthrough
        return latest

    def mongo_documents(self) -> dict[str, Walkthrough]:
        """The MongoDB collection: per walkin_id the greatest (sent_at, message_id) written.

        That is how the real sink applies revisions (monotone upserts), replays included.
        """
        docs: dict[str, Walkthrough] = {}
        for _, w in self.mongo_writes:
            if isinstance(w, Erased):  # the customer's documents are deleted
                erased = (w.business_id, w.customer_id)
                docs = {i: d for i, d in docs.items() if (d.business_id, d.customer_id) != erased}
                continue
            held = docs.get(w.walkin_id)
            if held is None or rank(w) > rank(held):
                docs[w.walkin_id] = w
        return docs

    def records_of(self, walkin_id: str) -> list[Attributed]:
        """Every record written for one walk-in, in the order written."""
        return [a for _, a in self.walkthroughs if a.walkthrough.walkin_id == walkin_id]

    def has(self, walkin_id: str, message_id: str | None = None) -> bool:
        """A record of ``walkin_id`` (crediting ``message_id``, if given) has been written."""
        return any(
            message_id in {None, a.walkthrough.message_id} for a in self.records_of(walkin_id)
        )

    def batches(self) -> list[list[Attributed]]:
        """The walkthroughs written per source batch (between two polls; ``batch_size=1``)."""
        bounds = [*self.polls, len(self.topic)]
        return [[a for _, a in _walkthroughs(self.topic[i:j])] for i, j in pairwise(bounds)]

    def reasons(self) -> list[tuple[Origin, Reason]]:
        """Each dead letter as (the record it carries, its reason), in the order written."""
        return [(d.origin, d.reason) for _, d in self.dead_letters]


def _walkthroughs(
    records: list[tuple[str, Attributed | Tombstone]],
) -> list[tuple[str, Attributed]]:
    return [(k, a) for k, a in records if isinstance(a, Attributed)]


def _caused_by_crash(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, SimulatedCrashError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def rank(w: Walkthrough) -> tuple[int, str]:
    """The order of revisions: a later one credits a greater (sent_at, message_id)."""
    return w.message_sent_at_ns, w.message_id


def daily_counts(walkthroughs: Iterable[Walkthrough]) -> Counter[tuple[str, str, int]]:
    """Walkthroughs counted per (business, local date, channel): the dashboard's numbers."""
    return Counter((w.business_id, w.local_date, w.channel) for w in walkthroughs)
