"""The customers of one state key: live or packed, copy-on-write, with timers (no I/O).

A customer is *live* (a ``Customer`` or ``CrowdedCustomer``) from the moment it is touched until
it is packed; otherwise it is *packed* (``snapshot.pack``): one bytes object, about a third of
the memory, which a snapshot copies by reference instead of pickling every record again at every
epoch. The shard packs itself: after a batch when more than ``live_limit`` customers are live,
least recently used first, and at each snapshot when it is large. A crowded customer (a hot key)
moves to the back of that order whenever touched, so it stays live while it is hot.

An erasure request drops the customer at once, live or packed, and leaves a marker (a digest of
its key, never its ids) until ``Rules.erasure_horizon_ns`` after the request was read: events
of the customer read meanwhile are dropped and counted (``suppressed``), never applied.
Markers are swept by ``expire`` and keep the shard from being discarded while they last.

Timers are buckets: ``_timers`` maps a deadline to the customers due then, ``_heap`` orders the
deadlines. Events read together share their deadlines, so a customer costs one list slot rather
than a heap entry. A customer's ``due_ns`` (its head when packed) is the deadline of its live
timer, never later than its real next deadline, so none is missed; entries whose deadline no
longer matches it are stale and skipped. Timers are rebuilt from the heads on restore.
"""

from __future__ import annotations

import heapq
from itertools import islice
from typing import Any, cast

from walkthroughs.attribution import snapshot
from walkthroughs.attribution.batch import Batch
from walkthroughs.attribution.claims import reused
from walkthroughs.attribution.crowded import CrowdedCustomer
from walkthroughs.attribution.customer import Customer
from walkthroughs.attribution.keys import CustomerKey, customer_key, erasure_digest
from walkthroughs.attribution.records import G_ID, G_KEY, W_BEST, W_DECIDED, W_ID
from walkthroughs.attribution.snapshot import State
from walkthroughs.wire.schema import (
    Erased,
    ErasureRequest,
    MessageEvent,
    Origin,
    ReusedWalkIn,
    WalkInEvent,
)

LIVE_CUSTOMERS = 10_000
"""A shard keeps at most this many customers live between batches (it packs down to half), and
one with more customers packs them at each snapshot; a smaller shard never packs. At the k8s
epoch (5 s) a large state's live customers are those touched since the last snapshot; this
bounds them when epochs are long: 480k over the 48 shards at most."""


class Shard:
    """The customers of one state key (see the module doc)."""

    __slots__ = (
        "_decide_by",
        "_erased",
        "_erased_sweep",
        "_gen",
        "_heap",
        "_last_walkin_read",
        "_live",
        "_packed",
        "_packed_messages",
        "_packed_walkins",
        "_timers",
        "live_limit",
        "suppressed",
        "window_ns",
    )

    def __init__(self, live_limit: int = LIVE_CUSTOMERS, window_ns: int = 0) -> None:
        self.live_limit = live_limit
        # The attribution window the bests in this shard were found under (0: not said). A
        # resumed shard refuses another (``config.resumed_window``): a best is only ever
        # improved, never searched again.
        self.window_ns = window_ns
        self._live: dict[CustomerKey, State] = {}
        self._packed: dict[CustomerKey, bytes] = {}
        self._packed_messages = 0  # retained in packed customers (the gauges need counts)
        self._packed_walkins = 0
        # Bounds for decide_all: no first decision was scheduled after _decide_by, and no
        # walk-in was read after _last_walkin_read (its decision under the running settings).
        self._decide_by = snapshot.NO_DUE
        self._last_walkin_read = snapshot.NO_DUE
        self._gen = 0  # snapshots taken: live customers of an older generation are copy-on-write
        self._timers: dict[int, list[CustomerKey]] = {}
        self._heap: list[int] = []
        self._erased: dict[bytes, int] = {}  # erasure_digest -> until when its events are dropped
        self._erased_sweep = snapshot.NO_DUE  # the earliest of those instants
        self.suppressed = 0  # events of erased customers dropped: the adapter counts and resets

    def __getstate__(self) -> tuple[Any, ...]:
        return ShardSnapshot(self).state()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        Shard.__init__(self)
        (
            _,
            self._packed,
            self._packed_messages,
            self._packed_walkins,
            self._decide_by,
            self._last_walkin_read,
            self._erased,
            self.window_ns,
        ) = state
        self._erased_sweep = min(self._erased.values(), default=snapshot.NO_DUE)
        for key, blob in self._packed.items():
            due = snapshot.packed_due(blob)
            if due is not None:
                self._add_timer(key, due)

    def __len__(self) -> int:
        return len(self._live) + len(self._packed)

    def is_empty(self) -> bool:
        """Whether the shard holds nothing, not even an erasure marker: it may be discarded."""
        return not (self._live or self._packed or self._erased)

    @staticmethod
    def restore(blob: bytes) -> Shard:
        """Rebuild a shard (and its timers) from ``ShardSnapshot.blob`` output."""
        shard = Shard.__new__(Shard)
        shard.__setstate__(snapshot.decode(blob))
        return shard

    @staticmethod
    def resumed(stored: object) -> Shard:
        """Return the shard Bytewax resumes a state key with (a stored ``ShardSnapshot``)."""
        if not isinstance(stored, Shard):
            msg = f"recovery snapshot of a shard is a {type(stored).__name__}, not a Shard"
            raise TypeError(msg)
        return stored

    def retained(self) -> tuple[int, int]:
        """Count the (messages, walk-ins) held: O(live customers)."""
        messages, walkins = self._packed_messages, self._packed_walkins
        for state in self._live.values():
            m, w = state.counts()
            messages += m
            walkins += w
        return messages, walkins

    def customer(self, key: CustomerKey) -> State | None:
        """Return a customer's state to look at (tests, tools): a copy if it is packed."""
        state = self._live.get(key)
        if state is None:
            blob = self._packed.get(key)
            state = None if blob is None else snapshot.unpack(blob)
        return state

    def apply(
        self, event: MessageEvent | WalkInEvent | ErasureRequest, origin: Origin, batch: Batch
    ) -> None:
        """Take one event of ``batch``; what it decides goes to the batch."""
        key = customer_key(event.business_id, event.customer_id)
        if isinstance(event, ErasureRequest):
            if event.__class__ is ErasureRequest:  # not a withdrawn request's tombstone
                self._erase(key, event, batch)
            return
        if self._erased and self._suppressed(key, batch):
            return
        if event.__class__ is ReusedWalkIn:  # the claim step's verdict: its id is another's
            batch.add_late(key, reused(origin, event.walkin_id))
            return
        live = self._live
        state = live.get(key)
        if state is None or state.gen != self._gen:
            state = self._take(key)
        elif state.crowded:  # most recently used: packed last
            live[key] = live.pop(key)
        if isinstance(event, MessageEvent):
            added = state.add_message(key, event, origin, batch)
        else:
            added = state.add_walkin(key, event, origin, batch)
            if added is not None:
                self._decide_by = max(self._decide_by, added)
                self._last_walkin_read = max(self._last_walkin_read, batch.now_ns)
        if state.full:  # grew past customer.CROWDED events: index it
            state = live[key] = CrowdedCustomer.of(cast(Customer, state))
        now = batch.now_ns
        due = state.due_ns
        if (due is not None and due <= now) or (added is not None and added <= now):
            state.expire(key, batch)  # something is due: the full pass
            state.due_ns = None  # its timer is stale now: schedule afresh
            self._settle(key, state, batch)
        elif added is not None:  # the fast path: only the new event's deadline is new
            self._schedule_at(key, state, added)

    def expire(self, batch: Batch) -> None:
        """Make every decision and let go of everything due at the batch's instant."""
        now = batch.now_ns
        if self._erased and self._erased_sweep <= now:
            self._erased = {d: until for d, until in self._erased.items() if until > now}
            self._erased_sweep = min(self._erased.values(), default=snapshot.NO_DUE)
        heap = self._heap
        while heap and heap[0] <= now:
            due = heapq.heappop(heap)
            for key in self._timers.pop(due):
                state = self._due(key, due)
                if state is None:
                    continue  # stale: the customer was discarded or has a newer timer
                state.due_ns = None
                state.expire(key, batch)
                self._settle(key, state, batch)  # its next deadline is after now

    def decide_all(self, batch: Batch) -> None:
        """Make every pending first decision now (end of input in bounded mode).

        Only customers with a timer due by the latest decision can hold a pending walk-in (a
        customer's timer is never later than its walk-ins' decisions): the others stay packed.
        That is the latest decision scheduled, or due under the running settings: a restart
        with a longer hold reschedules pending walk-ins past the first bound.
        """
        bound = max(self._decide_by, batch.rules.decision_at(self._last_walkin_read))
        candidates = [(due, key) for due in self._heap if due <= bound for key in self._timers[due]]
        for due, key in candidates:
            state = self._due(key, due)
            if state is None:
                continue  # stale
            state.expire(key, batch, decide_pending=True)
            state.due_ns = None
            self._settle(key, state, batch)
            self.end_batch()  # not every customer unpacked at once

    def end_batch(self) -> None:
        """Pack the least recently used live customers if more than ``live_limit`` are live.

        Down to half the limit, so that packing runs once per ``live_limit // 2`` customers
        touched, not after every batch.
        """
        if len(self._live) > self.live_limit:
            self._pack(len(self._live) - self.live_limit // 2)

    def next_deadline_ns(self) -> int | None:
        """Return when ``expire`` next has something to do (possibly early, never late)."""
        due = self._heap[0] if self._heap else None
        if self._erased and (due is None or self._erased_sweep < due):
            return self._erased_sweep
        return due

    def snapshot(self) -> ShardSnapshot:
        """Return the shard as of now, for a recovery snapshot: later changes cannot reach it.

        A large shard packs its live customers in place first (crowded ones stay live: their
        copy-on-write costs less than packing them at every epoch): most are not touched again
        before the next snapshot, which then takes their bytes as they are.
        """
        if len(self) > self.live_limit:
            self._pack(len(self._live), keep_crowded=True)
        taken = ShardSnapshot(self)
        self._gen += 1  # the live customers it holds are not changed any more, only copied
        return taken

    def _erase(self, key: CustomerKey, request: ErasureRequest, batch: Batch) -> None:
        """Drop the customer, live or packed, and drop its events until the horizon passes.

        Idempotent: a replayed request finds nothing more to drop and moves the horizon. It is
        reported (``Batch.erased``) even then, so that the sinks finish what a crash cut short.
        """
        batch.forget(key)
        state = self._live.pop(key, None)
        if state is None:
            blob = self._packed.pop(key, None)
            if blob is not None:
                state = snapshot.unpack(blob)
                m, w = state.counts()
                self._packed_messages -= m
                self._packed_walkins -= w
        messages, walkins, ghosts, _ = state.records() if state is not None else ((), (), (), None)
        credited = tuple(w[W_ID] for w in walkins if w[W_DECIDED] and w[W_BEST] is not None)
        ghost_ids = tuple(g[G_ID] for g in ghosts if g[G_KEY] is not None)
        digest = erasure_digest(key)
        until = batch.now_ns + batch.rules.erasure_horizon_ns
        self._erased[digest] = max(until, self._erased.get(digest, until))
        self._erased_sweep = min(self._erased.values())
        batch.erased.append(
            Erased(
                request.business_id,
                request.customer_id,
                credited,
                len(messages),
                len(walkins),
                len(ghosts),
                request.requested_at_ns,
                ghost_ids,
            )
        )

    def _suppressed(self, key: CustomerKey, batch: Batch) -> bool:
        """Whether the event's customer was erased within the horizon (the event is dropped)."""
        until = self._erased.get(erasure_digest(key))
        if until is None or until <= batch.now_ns:
            return False
        self.suppressed += 1
        return True

    def _pack(self, count: int, *, keep_crowded: bool = False) -> None:
        live, packed = self._live, self._packed
        messages = walkins = 0
        for key in list(islice(live, count)):  # dicts keep insertion order: oldest first
            state = live[key]
            if keep_crowded and state.crowded:
                continue
            del live[key]
            packed[key] = snapshot.pack(state)
            m, w = state.counts()
            messages += m
            walkins += w
        self._packed_messages += messages
        self._packed_walkins += walkins

    def _take(self, key: CustomerKey) -> State:
        """Return the customer live and safe to change.

        Unpacked or started if need be, or copied if a snapshot may hold its object:
        copy-on-write is what keeps snapshots cheap.
        """
        state = self._live.get(key)
        if state is not None:
            if state.gen != self._gen:
                state = self._live[key] = state.copy(self._gen)
            return state
        blob = self._packed.pop(key, None)
        if blob is None:
            state = Customer()
        else:
            state = snapshot.unpack(blob)
            m, w = state.counts()
            self._packed_messages -= m
            self._packed_walkins -= w
        state.gen = self._gen
        self._live[key] = state
        return state

    def _due(self, key: CustomerKey, due: int) -> State | None:
        """Return the live customer whose timer is ``due``; None if that timer is stale."""
        state = self._live.get(key)
        if state is None:
            blob = self._packed.get(key)
            if blob is None or snapshot.packed_due(blob) != due:
                return None
        elif state.due_ns != due:
            return None
        return self._take(key)

    def _settle(self, key: CustomerKey, state: State, batch: Batch) -> None:
        if state.is_empty():
            del self._live[key]
        else:
            deadline = state.next_deadline_ns(batch.rules)
            if deadline is not None:
                self._schedule_at(key, state, deadline)
                if state.has_pending():  # rescheduled under the running hold: keep the bound
                    self._decide_by = max(self._decide_by, deadline)

    def _schedule_at(self, key: CustomerKey, state: State, deadline: int) -> None:
        """Make sure a timer no later than ``deadline`` exists for the customer."""
        current = state.due_ns
        if current is None or deadline < current:
            state.due_ns = deadline
            self._add_timer(key, deadline)

    def _add_timer(self, key: CustomerKey, deadline: int) -> None:
        bucket = self._timers.get(deadline)
        if bucket is None:
            self._timers[deadline] = [key]
            heapq.heappush(self._heap, deadline)
        else:
            bucket.append(key)


class ShardSnapshot:
    """A shard as it was at ``Shard.snapshot``; immutable, serialized only when stored.

    Packed customers are bytes, immutable; live customers are held as the objects they are,
    which the shard never changes afterwards (it writes copies: ``Shard._take``). So holding
    references is a copy. Bytewax pickles a snapshot only when recovery is on: then
    ``__reduce__`` packs the live customers, compresses the lot and unpickles as the restored
    ``Shard``. Without recovery a snapshot costs no serialization at all.
    """

    __slots__ = (
        "_blob",
        "_decide_by",
        "_erased",
        "_last_walkin_read",
        "_live",
        "_packed",
        "retained",
        "window_ns",
    )

    def __init__(self, shard: Shard) -> None:
        self._packed = dict(shard._packed)  # bytes are immutable
        self._live = dict(shard._live)  # not changed after this: copy-on-write (Shard._take)
        self.retained = shard.retained()  # (messages, walk-ins)
        self._decide_by = shard._decide_by
        self._last_walkin_read = shard._last_walkin_read
        self._erased = dict(shard._erased)
        self.window_ns = shard.window_ns
        self._blob: bytes | None = None

    def state(self) -> tuple[Any, ...]:
        """The snapshot layout (``snapshot.STATE_FORMAT``): every customer packed."""
        packed = dict(self._packed)
        packed.update((key, snapshot.pack(state)) for key, state in self._live.items())
        return (
            snapshot.STATE_FORMAT,
            packed,
            *self.retained,
            self._decide_by,
            self._last_walkin_read,
            self._erased,
            self.window_ns,
        )

    def blob(self) -> bytes:
        """The snapshot serialized and compressed (computed once)."""
        if self._blob is None:
            self._blob = snapshot.encode(self.state())
        return self._blob

    def __reduce__(self) -> tuple[Any, ...]:
        return Shard.restore, (self.blob(),)
