"""The attribution rule for one (business, customer), read against the contract line by line.

Pure: every change is a function of (state, event, batch), with the batch's ``now_ns`` the
injected processing time. Event time (``sent_at``, ``started_at``) decides attribution;
processing time decides only hold and retention.

The rule: walk-in W at t = ``started_at`` is attributed to the message M of the same customer
with ``t - window < sent_at <= t`` and the greatest ``(sent_at, message_id)`` (ids compare by
code point, which is UTF-8 byte order). A repeated id is a duplicate: the first copy read counts.

Lifecycle:

* A message is kept for ``window + allowed_lateness`` after it is read; a walk-in for
  ``allowed_lateness``.
* A walk-in's first decision is made ``hold`` after it is read (or at end of input in bounded
  mode) with the messages read so far: a walkthrough, or nothing.
* A message read later that beats a walk-in's attribution re-attributes it; if the walk-in was
  decided already, that is a revision (same ``walkin_id``). Adding messages only raises the
  attribution, so revisions are monotone; sinks rely on that to ignore stale replays.
* A walk-in let go leaves a *ghost* (id, started_at, attribution) for ``window`` more: a
  duplicate of it is still recognised, and a message that would have credited it is reported
  ``late``. Messages let go leave only the greatest ``(sent_at, message_id)`` let go, which makes
  a walk-in that needed it detectable as ``late`` too.
* A customer with no message, walk-in or ghost left is discarded.

``Customer`` holds a handful of events as tuples, scanned: compact, and fastest at that size.
Past ``CROWDED`` events it is replaced by a ``CrowdedCustomer`` (``crowded.py``): the same rule
over sorted indexes, O(log n) per event for a hot key.
"""

from __future__ import annotations

from bisect import bisect_left

from walkthroughs.attribution.batch import Batch
from walkthroughs.attribution.keys import CustomerKey
from walkthroughs.attribution.records import (
    G_ID,
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
    credited,
    decided,
    ghost_of,
    new_walkin,
    stored_message,
)
from walkthroughs.attribution.rules import Rules
from walkthroughs.wire.schema import DeadLetter, MessageEvent, Origin, Reason, WalkInEvent

CROWDED = 64
"""Past this many retained messages, or walk-ins and ghosts, a customer is indexed
(``CrowdedCustomer``): scanning tuples is O(n) per event, fine for a handful only."""

Records = tuple[
    tuple[StoredMessage, ...], tuple[WalkIn, ...], tuple[Ghost, ...], AttributionKey | None
]
"""A customer's records as stored: messages sorted by (sent_at, id), walk-ins in read order,
ghosts in the order let go, and the greatest message key let go."""


class Customer:
    """Everything retained for one customer with few events, as tuples replaced on change.

    Invariants: ``messages`` is sorted and holds each message_id once; walk-ins are in read
    order; no walkin_id is in both ``walkins`` and ``ghosts``; ``forgotten`` is the greatest
    message key let go. ``due_ns`` is the deadline of the customer's live timer (None: none);
    ``gen`` is the store's snapshot generation when the object was made (copy-on-write).
    """

    __slots__ = ("due_ns", "forgotten", "full", "gen", "ghosts", "messages", "walkins")

    crowded = False  # see CrowdedCustomer

    def __init__(
        self,
        messages: tuple[StoredMessage, ...] = (),
        walkins: tuple[WalkIn, ...] = (),
        ghosts: tuple[Ghost, ...] = (),
        forgotten: AttributionKey | None = None,
    ) -> None:
        self.messages = messages
        self.walkins = walkins
        self.ghosts = ghosts
        self.forgotten = forgotten
        self.due_ns: int | None = None
        self.gen = 0
        self.full = self.needs_index()  # to be replaced by a CrowdedCustomer

    def records(self) -> Records:
        """The records as stored (see ``Records``)."""
        return self.messages, self.walkins, self.ghosts, self.forgotten

    def copy(self, gen: int) -> Customer:
        """The same records (immutable tuples, so shared) in a new object of generation ``gen``."""
        state = Customer(self.messages, self.walkins, self.ghosts, self.forgotten)
        state.due_ns = self.due_ns
        state.gen = gen
        return state

    def counts(self) -> tuple[int, int]:
        """(messages, walk-ins) retained."""
        return len(self.messages), len(self.walkins)

    def has_pending(self) -> bool:
        """Some walk-in still waits for its first decision."""
        return not all(w[W_DECIDED] for w in self.walkins)

    def is_empty(self) -> bool:
        """Nothing is left to decide or to recognise: the customer can be discarded."""
        return not (self.messages or self.walkins or self.ghosts)

    def needs_index(self) -> bool:
        """Too many events to scan: to be replaced by a ``CrowdedCustomer``."""
        return len(self.messages) > CROWDED or len(self.walkins) + len(self.ghosts) > CROWDED

    def add_message(
        self, key: CustomerKey, event: MessageEvent, origin: Origin, batch: Batch
    ) -> int | None:
        """Add a message; return its deadline, or None for a duplicate."""
        message_id = event.message_id
        messages = self.messages
        for m in messages:
            if m[M_ID] == message_id:
                return None  # a duplicate: the first copy read is the one that counts
        stored = stored_message(event, batch.now_ns)
        i = bisect_left(messages, stored)
        self.messages = (*messages[:i], stored, *messages[i:])
        if len(messages) >= CROWDED:
            self.full = True
        rules = batch.rules
        sent = stored[M_SENT]
        walkins = self.walkins
        for j, w in enumerate(walkins):
            best = w[W_BEST]
            # Compared by (sent_at, id): a re-read copy of a best let go is no improvement.
            if rules.credits(sent, w[W_STARTED]) and (
                best is None or (sent, message_id) > (best[M_SENT], best[M_ID])
            ):
                better = credited(w, stored)
                walkins = (*walkins[:j], better, *walkins[j + 1 :])
                if better[W_DECIDED]:
                    batch.revised(key, better, was_attributed=best is not None)
        self.walkins = walkins
        if self.ghosts:
            candidate = (sent, message_id)
            missed = [
                g[G_ID]
                for g in self.ghosts
                if rules.credits(sent, g[G_STARTED]) and beats(candidate, g[G_KEY])
            ]
            if missed:
                batch.add_late(key, late_message(origin, message_id, missed))
        return batch.message_due

    def add_walkin(
        self, key: CustomerKey, event: WalkInEvent, origin: Origin, batch: Batch
    ) -> int | None:
        """Add a walk-in; return its first deadline, or None for a duplicate."""
        walkin_id = event.walkin_id
        for w in self.walkins:
            if w[W_ID] == walkin_id:
                return None  # a duplicate
        for g in self.ghosts:
            if g[G_ID] == walkin_id:
                return None  # a duplicate of a walk-in already let go
        started = event.started_at_ns
        messages = self.messages
        # (t + 1,) sorts after every message sent at or before t and before any sent later.
        i = bisect_left(messages, (started + 1,))
        best = (
            messages[i - 1] if i and batch.rules.credits(messages[i - 1][M_SENT], started) else None
        )
        self.walkins = (*self.walkins, new_walkin(event, best, batch.now_ns))
        if len(self.walkins) + len(self.ghosts) > CROWDED:
            self.full = True
        check_forgotten(key, self.forgotten, best, event, origin, batch)
        return batch.decision_due

    def expire(self, key: CustomerKey, batch: Batch, *, decide_pending: bool = False) -> None:
        """Decide due walk-ins, then let go of everything whose retention has passed.

        ``decide_pending`` decides every pending walk-in, due or not (end of input).
        """
        now = batch.now_ns
        rules = batch.rules
        kept_for = rules.window_ns + rules.lateness_ns  # messages and ghosts, after their read
        ghosts = [g for g in self.ghosts if g[G_READ] + kept_for > now]
        if self.walkins:
            hold, lateness = rules.hold_ns, rules.lateness_ns
            kept: list[WalkIn] = []
            for walkin in self.walkins:
                w = walkin
                if not w[W_DECIDED] and (decide_pending or w[W_READ] + hold <= now):
                    w = decided(w)
                    if w[W_BEST] is not None:
                        batch.decided(key, w)
                if w[W_DECIDED] and w[W_READ] + lateness <= now:  # allowed lateness passed
                    if w[W_READ] + kept_for > now:  # its ghost too, if the pass comes that late
                        ghosts.append(ghost_of(w))
                else:
                    kept.append(w)
            self.walkins = tuple(kept)
        self.ghosts = tuple(ghosts)
        if any(m[M_READ] + kept_for <= now for m in self.messages):
            gone = [m for m in self.messages if m[M_READ] + kept_for <= now]
            self.messages = tuple(m for m in self.messages if m[M_READ] + kept_for > now)
            self.forgotten = forgotten_after(self.forgotten, gone)

    def next_deadline_ns(self, rules: Rules) -> int | None:
        """Return the earliest time something of this customer is due, if anything is."""
        kept_for = rules.window_ns + rules.lateness_ns  # messages and ghosts, after their read
        times = [m[M_READ] + kept_for for m in self.messages]
        hold, lateness = rules.hold_ns, rules.lateness_ns
        times += [w[W_READ] + (lateness if w[W_DECIDED] else hold) for w in self.walkins]
        times += [g[G_READ] + kept_for for g in self.ghosts]
        return min(times) if times else None


def beats(candidate: AttributionKey, current: AttributionKey | None) -> bool:
    """Tell whether a message with key ``candidate`` is preferred to the ``current`` one."""
    return current is None or candidate > current


def forgotten_after(
    forgotten: AttributionKey | None, gone: list[StoredMessage]
) -> AttributionKey | None:
    """The greatest message key let go, once ``gone`` are let go too."""
    latest = max((m[M_SENT], m[M_ID]) for m in gone)
    return latest if forgotten is None or latest > forgotten else forgotten


def check_forgotten(
    key: CustomerKey,
    forgotten: AttributionKey | None,
    best: StoredMessage | None,
    event: WalkInEvent,
    origin: Origin,
    batch: Batch,
) -> None:
    """Report a walk-in ``late`` if a message let go would credit it better than ``best``."""
    if forgotten is None or not batch.rules.credits(forgotten[0], event.started_at_ns):
        return
    if best is None or forgotten > (best[M_SENT], best[M_ID]):
        error = (
            f"late: walk-in {event.walkin_id!r} arrived after message {forgotten[1]!r}, which it "
            "would be attributed to, was let go (window + allowed lateness passed)"
        )
        batch.add_late(key, DeadLetter(origin, Reason.LATE, error))


def late_message(origin: Origin, message_id: str, missed: list[str]) -> DeadLetter:
    """The dead letter of a message that would have credited walk-ins already let go."""
    error = (
        f"late: message {message_id!r} would have credited walk-in(s) "
        f"{', '.join(repr(w) for w in missed[:3])} already let go (allowed lateness passed)"
    )
    return DeadLetter(origin, Reason.LATE, error)
