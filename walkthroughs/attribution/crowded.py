"""The rule of ``customer.py`` for a hot key: the same decisions, over sorted indexes.

A default customer id, a bot or a test account can hold hundreds of thousands of events; scanning
them for every event made such a key quadratic and starved every other key of its worker. Here
each event costs O(log n) in the key's retained messages n and walk-ins m:

* messages sorted by (sent_at, id) (``SortedList``: logarithmic insert and range queries), with
  a set of their ids for duplicates;
* walk-ins and ghosts by id (duplicates, updates) and in a ``StartIndex`` by started_at with
  their attribution key, so that a new message visits only the walk-ins it improves (started in
  ``[sent_at, sent_at + window)`` and crediting an earlier message or none), and only the ghosts
  it would have improved, never the others in that range;
* queues in read order for what falls due (first decisions, releases, ghosts, messages): read
  times only grow, so whatever is due is at the front, and timers cost O(1) per event let go.

Read times come from the wall clock, so they mostly grow; when they step back (NTP, a restart on
a host whose clock is behind) an event may queue behind one due later and fall due with it: late
by that skew, never early.
"""

from __future__ import annotations

from collections import deque

from sortedcontainers import SortedList

from walkthroughs.attribution.batch import Batch
from walkthroughs.attribution.customer import (
    Customer,
    Records,
    check_forgotten,
    forgotten_after,
    late_message,
)
from walkthroughs.attribution.keys import CustomerKey
from walkthroughs.attribution.records import (
    G_KEY,
    G_READ,
    G_STARTED,
    M_ID,
    M_READ,
    M_SENT,
    W_BEST,
    W_DECIDED,
    W_ID,
    W_READ,
    W_STARTED,
    AttributionKey,
    Ghost,
    StoredMessage,
    WalkIn,
    attribution_key,
    credited,
    decided,
    ghost_of,
    new_walkin,
    stored_message,
)
from walkthroughs.attribution.rules import Rules
from walkthroughs.attribution.start_index import StartIndex
from walkthroughs.wire.schema import MessageEvent, Origin, WalkInEvent

LATE_IDS_LISTED = 3  # a late message names at most this many of the walk-ins it missed


class CrowdedCustomer:
    """Everything retained for one customer with many events, indexed (see the module doc).

    Holds the same records as a ``Customer`` and the same invariants; ``records()`` gives them
    back in the stored layout, so a snapshot does not tell the two apart.
    """

    __slots__ = (
        "due_ns",
        "forgotten",
        "gen",
        "ghost_queue",
        "ghost_starts",
        "ghosts",
        "message_ids",
        "message_queue",
        "messages",
        "to_decide",
        "to_release",
        "walkin_starts",
        "walkins",
    )

    crowded = True
    full = False  # indexed already: never replaced

    def __init__(self, records: Records) -> None:
        messages, walkins, ghosts, forgotten = records
        self.messages: SortedList = SortedList(messages)
        self.message_ids = {m[M_ID] for m in messages}
        self.message_queue = deque(sorted(messages, key=_read_at))  # stable: ties keep order
        self.walkins: dict[str, WalkIn] = {w[W_ID]: w for w in walkins}  # in read order
        self.walkin_starts = StartIndex(
            ((w[W_STARTED], w[W_ID]), attribution_key(w[W_BEST])) for w in walkins
        )
        self.to_decide = deque(w[W_ID] for w in walkins if not w[W_DECIDED])
        self.to_release = deque(w[W_ID] for w in walkins if w[W_DECIDED])
        self.ghosts: dict[str, Ghost] = {g[0]: g for g in ghosts}  # in the order let go
        self.ghost_starts = StartIndex(((g[G_STARTED], g[0]), g[G_KEY]) for g in ghosts)
        self.ghost_queue = deque(self.ghosts)
        self.forgotten: AttributionKey | None = forgotten
        self.due_ns: int | None = None
        self.gen = 0

    @classmethod
    def of(cls, customer: Customer) -> CrowdedCustomer:
        """The indexed form of a customer that grew past ``CROWDED`` events."""
        crowded = cls(customer.records())
        crowded.due_ns = customer.due_ns
        crowded.gen = customer.gen
        return crowded

    def records(self) -> Records:
        """The records in the stored layout (see ``customer.Records``)."""
        ghosts = tuple(self.ghosts[g] for g in self.ghost_queue)
        return tuple(self.messages), tuple(self.walkins.values()), ghosts, self.forgotten

    def copy(self, gen: int) -> CrowdedCustomer:
        """An independent copy of generation ``gen`` (O(n): once per snapshot it is in)."""
        state = CrowdedCustomer.__new__(CrowdedCustomer)
        state.messages = self.messages.copy()
        state.message_ids = set(self.message_ids)
        state.message_queue = deque(self.message_queue)
        state.walkins = dict(self.walkins)
        state.walkin_starts = self.walkin_starts.copy()
        state.to_decide = deque(self.to_decide)
        state.to_release = deque(self.to_release)
        state.ghosts = dict(self.ghosts)
        state.ghost_starts = self.ghost_starts.copy()
        state.ghost_queue = deque(self.ghost_queue)
        state.forgotten = self.forgotten
        state.due_ns = self.due_ns
        state.gen = gen
        return state

    def counts(self) -> tuple[int, int]:
        """(messages, walk-ins) retained."""
        return len(self.messages), len(self.walkins)

    def has_pending(self) -> bool:
        """Some walk-in still waits for its first decision."""
        return bool(self.to_decide)

    def is_empty(self) -> bool:
        """Nothing is left to decide or to recognise: the customer can be discarded."""
        return not (self.messages or self.walkins or self.ghosts)

    def add_message(
        self, key: CustomerKey, event: MessageEvent, origin: Origin, batch: Batch
    ) -> int | None:
        """Add a message; return its deadline, or None for a duplicate."""
        message_id = event.message_id
        if message_id in self.message_ids:
            return None  # a duplicate: the first copy read is the one that counts
        stored = stored_message(event, batch.now_ns)
        self.messages.add(stored)
        self.message_ids.add(message_id)
        self.message_queue.append(stored)
        sent = stored[M_SENT]
        window_end = sent + batch.rules.window_ns
        candidate = (sent, message_id)
        walkins = self.walkins
        for walkin_id in self.walkin_starts.raise_below(sent, window_end, candidate):
            w = walkins[walkin_id]
            was_attributed = w[W_BEST] is not None
            w = walkins[walkin_id] = credited(w, stored)
            if w[W_DECIDED]:
                batch.revised(key, w, was_attributed=was_attributed)
        if self.ghosts:
            missed = self.ghost_starts.ids_below(sent, window_end, candidate, LATE_IDS_LISTED)
            if missed:
                batch.add_late(key, late_message(origin, message_id, missed))
        return batch.message_due

    def add_walkin(
        self, key: CustomerKey, event: WalkInEvent, origin: Origin, batch: Batch
    ) -> int | None:
        """Add a walk-in; return its first deadline, or None for a duplicate."""
        walkin_id = event.walkin_id
        if walkin_id in self.walkins or walkin_id in self.ghosts:
            return None  # a duplicate, of a walk-in retained or let go
        started = event.started_at_ns
        # The greatest message sent at or before t: (t + 1,) sorts after all of those.
        before = self.messages.irange(maximum=(started + 1,), inclusive=(True, False), reverse=True)
        best: StoredMessage | None = next(before, None)
        if best is not None and not batch.rules.credits(best[M_SENT], started):
            best = None
        self.walkins[walkin_id] = new_walkin(event, best, batch.now_ns)
        self.walkin_starts.add((started, walkin_id), attribution_key(best))
        self.to_decide.append(walkin_id)
        check_forgotten(key, self.forgotten, best, event, origin, batch)
        return batch.decision_due

    def expire(self, key: CustomerKey, batch: Batch, *, decide_pending: bool = False) -> None:
        """Decide due walk-ins, then let go of everything whose retention has passed.

        ``decide_pending`` decides every pending walk-in, due or not (end of input).
        """
        now = batch.now_ns
        rules = batch.rules
        walkins = self.walkins
        pending, waiting = self.to_decide, self.to_release
        while pending and (decide_pending or walkins[pending[0]][W_READ] + rules.hold_ns <= now):
            walkin_id = pending.popleft()
            w = walkins[walkin_id] = decided(walkins[walkin_id])
            waiting.append(walkin_id)
            if w[W_BEST] is not None:
                batch.decided(key, w)
        while waiting and walkins[waiting[0]][W_READ] + rules.lateness_ns <= now:
            w = walkins.pop(waiting.popleft())
            self.walkin_starts.remove((w[W_STARTED], w[W_ID]))
            self.ghosts[w[W_ID]] = ghost_of(w)
            self.ghost_starts.add((w[W_STARTED], w[W_ID]), attribution_key(w[W_BEST]))
            self.ghost_queue.append(w[W_ID])
        ghosts, queue = self.ghosts, self.ghost_queue
        kept_for = rules.window_ns + rules.lateness_ns  # messages and ghosts, after their read
        while queue and ghosts[queue[0]][G_READ] + kept_for <= now:
            g = ghosts.pop(queue.popleft())
            self.ghost_starts.remove((g[G_STARTED], g[0]))
        messages = self.message_queue
        gone: list[StoredMessage] = []
        while messages and messages[0][M_READ] + kept_for <= now:
            m = messages.popleft()
            self.messages.remove(m)
            self.message_ids.discard(m[M_ID])
            gone.append(m)
        if gone:
            self.forgotten = forgotten_after(self.forgotten, gone)

    def next_deadline_ns(self, rules: Rules) -> int | None:
        """Return the earliest time something is due: the fronts of the queues, O(1)."""
        kept_for = rules.window_ns + rules.lateness_ns  # messages and ghosts, after their read
        times = []
        if self.to_decide:
            times.append(self.walkins[self.to_decide[0]][W_READ] + rules.hold_ns)
        if self.to_release:
            times.append(self.walkins[self.to_release[0]][W_READ] + rules.lateness_ns)
        if self.ghost_queue:
            times.append(self.ghosts[self.ghost_queue[0]][G_READ] + kept_for)
        if self.message_queue:
            times.append(self.message_queue[0][M_READ] + kept_for)
        return min(times) if times else None


def _read_at(message: StoredMessage) -> int:
    return message[M_READ]
