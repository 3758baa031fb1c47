"""The attribution rule, early then exact, as pure logic over per-customer state.

No I/O, no Bytewax: every decision is a function of (state, event, now), with ``now`` the injected
processing time in nanoseconds. Event time (``sent_at``, ``started_at``) decides attribution;
processing time decides only hold and retention.

The rule (contract): walk-in W of (business b, customer c) at t = ``started_at`` is attributed to
the message M of the same (b, c) with ``t - window < sent_at <= t`` and the greatest
``(sent_at, message_id)`` (ids compare by code point, which is UTF-8 byte order).

Lifecycle, per (b, c):

* A message is kept for ``window + allowed_lateness`` after it is read; a walk-in for
  ``allowed_lateness``. Deadlines are absolute and stored with the event when it is read.
* A walk-in's first decision is made ``hold`` after it is read (or at end of input in bounded
  mode) with the messages read so far: a walkthrough, or nothing.
* A message read later that beats a walk-in's current attribution re-attributes it; if the walk-in
  was decided already, that emits a revision (same ``walkin_id``). Adding messages only ever
  raises the attribution, so revisions are monotone: a later one always has a greater
  ``(message_sent_at, message_id)``. Sinks rely on that to ignore stale replays.
* A walk-in that is let go leaves a *ghost* (id, started_at, attribution) for ``window`` more:
  a duplicate of it is still recognised, and a message that would have credited it is reported
  ``late``. Messages let go leave only the greatest ``(sent_at, message_id)`` let go, which makes
  a walk-in that needed it detectable as ``late`` too. Both are forgotten with the key.
* A key with no message, walk-in or ghost left is discarded.

Customers are grouped into ``STATE_SHARDS`` shards, the state keys of the dataflow (see
``shard_of``): Bytewax 0.21 never deletes the recovery rows of discarded keys, so the number of
state keys must stay bounded while millions of customers come and go.
"""

from __future__ import annotations

import heapq
import pickle
from bisect import bisect_left, insort
from dataclasses import dataclass
from zlib import crc32

from walkthroughs.schema import (
    Attributed,
    DeadLetter,
    MessageEvent,
    Origin,
    Reason,
    WalkInEvent,
    Walkthrough,
)

STATE_SHARDS = 1024
"""How many state keys hold all customers. Part of the recovery format: changing it re-routes
customers to other shards, so it needs a fresh recovery store (or a migration)."""

Output = Attributed | DeadLetter
CustomerKey = tuple[str, str]  # (business_id, customer_id): a tuple, so ids may hold any character
# A stored message: (sent_at_ns, message_id, channel, campaign_id, expires_at_ns). Tuples sort by
# (sent_at_ns, message_id) first, which is the rule's order; ids are unique within a customer.
StoredMessage = tuple[int, str, int, str, int]
AttributionKey = tuple[int, str]  # (sent_at_ns, message_id) of the message a walk-in credits
# A walk-in let go: (walkin_id, started_at_ns, attribution or None, expires_at_ns).
Ghost = tuple[str, int, AttributionKey | None, int]


@dataclass(frozen=True)
class Rules:
    """The timing parameters, in nanoseconds; see the module docstring."""

    window_ns: int
    hold_ns: int
    lateness_ns: int

    def __post_init__(self) -> None:
        """Reject values the lifecycle cannot honour."""
        if self.window_ns <= 0:
            msg = f"window must be positive, got {self.window_ns} ns"
            raise ValueError(msg)
        if not 0 <= self.hold_ns <= self.lateness_ns:
            msg = f"need 0 <= hold <= allowed lateness, got {self.hold_ns}, {self.lateness_ns} ns"
            raise ValueError(msg)


def shard_of(business_id: str, customer_id: str) -> str:
    """Return the state key of a customer: stable across processes, runs and machines."""
    b = business_id.encode()
    digest = crc32(customer_id.encode(), crc32(b"%d:%s" % (len(b), b)))
    return f"{digest % STATE_SHARDS:04d}"


_DECIDED = -1  # decide_at_ns of a walk-in whose first decision is made


class _WalkIn:
    """A retained walk-in; mutable (its attribution and decision change), pickled as a tuple."""

    __slots__ = (
        "best",
        "decide_at_ns",
        "expires_at_ns",
        "local_date",
        "location_id",
        "read_at_ns",
        "started_at_ns",
        "walkin_id",
    )

    def __init__(self, event: WalkInEvent, now_ns: int, rules: Rules) -> None:
        self.walkin_id = event.walkin_id
        self.started_at_ns = event.started_at_ns
        self.location_id = event.location_id
        self.local_date = event.local_date
        self.read_at_ns = now_ns
        self.decide_at_ns = now_ns + rules.hold_ns  # _DECIDED once decided
        self.expires_at_ns = now_ns + rules.lateness_ns
        self.best: StoredMessage | None = None

    @property
    def pending(self) -> bool:
        """The first decision is still to be made."""
        return self.decide_at_ns != _DECIDED

    def __getstate__(self) -> tuple[object, ...]:
        # Spelled out, in __slots__ order: this runs for every retained walk-in at every snapshot.
        return (
            self.best,
            self.decide_at_ns,
            self.expires_at_ns,
            self.local_date,
            self.location_id,
            self.read_at_ns,
            self.started_at_ns,
            self.walkin_id,
        )

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class CustomerState:
    """Everything retained for one (business, customer).

    Invariants: ``messages`` is sorted and holds each message_id once; no walkin_id is in both
    ``walkins`` and ``ghosts``; ``forgotten`` is the greatest message key let go, if any.
    """

    __slots__ = ("forgotten", "ghosts", "messages", "walkins")

    def __init__(self) -> None:
        self.messages: list[StoredMessage] = []
        self.walkins: list[_WalkIn] = []
        self.ghosts: list[Ghost] = []
        self.forgotten: AttributionKey | None = None

    def __getstate__(self) -> tuple[object, ...]:
        return (self.messages, self.walkins, self.ghosts, self.forgotten)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self.messages, self.walkins, self.ghosts, self.forgotten = state  # type: ignore[assignment]

    def is_empty(self) -> bool:
        """Nothing is left to decide or to recognise: the key can be discarded."""
        return not (self.messages or self.walkins or self.ghosts)

    def next_deadline_ns(self) -> int | None:
        """Return the earliest time something of this customer is due, if anything is."""
        earliest: int | None = None
        for m in self.messages:
            if earliest is None or m[4] < earliest:
                earliest = m[4]
        for w in self.walkins:
            due = w.decide_at_ns if w.decide_at_ns != _DECIDED else w.expires_at_ns
            if earliest is None or due < earliest:
                earliest = due
        for g in self.ghosts:
            if earliest is None or g[3] < earliest:
                earliest = g[3]
        return earliest


class Shard:
    """The customers of one state key, with a timer heap over their deadlines.

    ``_due[key]`` is the deadline of the heap entry kept for a customer; it is never later than
    the customer's real next deadline, so no deadline is missed; heap entries whose time no
    longer matches ``_due`` are stale and skipped. Only ``customers`` is pickled; the timers are
    rebuilt on restore.
    """

    __slots__ = ("_due", "_heap", "customers")

    def __init__(self) -> None:
        self.customers: dict[CustomerKey, CustomerState] = {}
        self._due: dict[CustomerKey, int] = {}
        self._heap: list[tuple[int, CustomerKey]] = []

    def __getstate__(self) -> dict[CustomerKey, CustomerState]:
        return self.customers

    def __setstate__(self, customers: dict[CustomerKey, CustomerState]) -> None:
        self.customers = customers
        self._due = {}
        self._heap = []
        for key, state in customers.items():
            self._schedule(key, state)

    def __len__(self) -> int:
        return len(self.customers)

    def retained(self) -> tuple[int, int]:
        """Count the (messages, walk-ins) held: O(customers), so call it once per epoch."""
        messages = walkins = 0
        for state in self.customers.values():
            messages += len(state.messages)
            walkins += len(state.walkins)
        return messages, walkins

    def dump(self) -> bytes:
        """Serialize for a recovery snapshot: a copy later changes cannot reach."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def restore(blob: bytes) -> Shard:
        """Rebuild a shard (and its timers) from ``dump`` output."""
        shard = pickle.loads(blob)
        if not isinstance(shard, Shard):
            msg = f"recovery snapshot holds {type(shard).__name__}, not a Shard"
            raise TypeError(msg)
        return shard

    def apply(
        self, event: MessageEvent | WalkInEvent, origin: Origin, now_ns: int, rules: Rules
    ) -> list[Output]:
        """Take one event read at ``now_ns``; return what it decides (walkthroughs, late)."""
        key = (event.business_id, event.customer_id)
        state = self.customers.get(key)
        if state is None:
            state = self.customers[key] = CustomerState()
        out: list[Output] = []
        if isinstance(event, MessageEvent):
            added = _add_message(state, key, event, origin, now_ns, rules, out)
        else:
            added = _add_walkin(state, key, event, origin, now_ns, rules, out)
        due = self._due.get(key)
        if (due is not None and due <= now_ns) or (added is not None and added <= now_ns):
            _expire(state, key, now_ns, rules, out)  # something is due: the full pass
            self._settle(key, state)
        elif added is not None:  # the fast path: only the new event's deadlines are new
            self._schedule_at(key, added)
        return out

    def expire(self, now_ns: int, rules: Rules) -> list[Output]:
        """Make every decision and let go of everything due at ``now_ns``."""
        out: list[Output] = []
        while self._heap and self._heap[0][0] <= now_ns:
            due, key = heapq.heappop(self._heap)
            if self._due.get(key) != due:
                continue  # stale: a newer entry exists for this customer
            del self._due[key]
            state = self.customers[key]
            _expire(state, key, now_ns, rules, out)
            self._settle(key, state)
        return out

    def decide_all(self, now_ns: int, rules: Rules) -> list[Output]:
        """Make every pending first decision now (end of input in bounded mode)."""
        out: list[Output] = []
        for key, state in self.customers.items():
            for walkin in state.walkins:
                if walkin.pending:
                    walkin.decide_at_ns = now_ns
            _expire(state, key, now_ns, rules, out)
        for key, state in list(self.customers.items()):
            self._settle(key, state)
        return out

    def next_deadline_ns(self) -> int | None:
        """Return when ``expire`` next has something to do (possibly early, never late)."""
        return self._heap[0][0] if self._heap else None

    def _settle(self, key: CustomerKey, state: CustomerState) -> None:
        if state.is_empty():
            del self.customers[key]
            self._due.pop(key, None)
        else:
            self._schedule(key, state)

    def _schedule(self, key: CustomerKey, state: CustomerState) -> None:
        deadline = state.next_deadline_ns()
        if deadline is not None:
            self._schedule_at(key, deadline)

    def _schedule_at(self, key: CustomerKey, deadline: int) -> None:
        """Make sure a heap entry no later than ``deadline`` exists for the customer."""
        current = self._due.get(key)
        if current is None or deadline < current:
            self._due[key] = deadline
            heapq.heappush(self._heap, (deadline, key))


# ---------------------------------------------------------------------------------------------
# The rule, per customer
# ---------------------------------------------------------------------------------------------


def _credits(sent_at_ns: int, started_at_ns: int, rules: Rules) -> bool:
    """Tell whether a message sent then is in the window of a walk-in started then."""
    return started_at_ns - rules.window_ns < sent_at_ns <= started_at_ns


def _beats(candidate: AttributionKey, current: AttributionKey | None) -> bool:
    return current is None or candidate > current


def _key_of(message: StoredMessage | None) -> AttributionKey | None:
    return None if message is None else (message[0], message[1])


def _best_message(
    messages: list[StoredMessage], started_at_ns: int, rules: Rules
) -> StoredMessage | None:
    """The greatest message with ``sent_at`` in ``(t - window, t]``, or None."""
    # (t + 1,) sorts after every message sent at or before t and before any sent later.
    i = bisect_left(messages, (started_at_ns + 1,))
    if i and _credits(messages[i - 1][0], started_at_ns, rules):
        return messages[i - 1]
    return None


def _add_message(
    state: CustomerState,
    key: CustomerKey,
    event: MessageEvent,
    origin: Origin,
    now_ns: int,
    rules: Rules,
    out: list[Output],
) -> int | None:
    """Add a message; return its deadline, or None for a duplicate."""
    message_id = event.message_id
    for m in state.messages:
        if m[1] == message_id:
            return None  # a duplicate: the first copy read is the one that counts
    expires = now_ns + rules.window_ns + rules.lateness_ns
    stored = (event.sent_at_ns, event.message_id, event.channel, event.campaign_id, expires)
    insort(state.messages, stored)
    candidate = (event.sent_at_ns, event.message_id)
    for walkin in state.walkins:
        if _credits(event.sent_at_ns, walkin.started_at_ns, rules) and _beats(
            candidate, _key_of(walkin.best)
        ):
            previous = walkin.best
            walkin.best = stored
            if not walkin.pending:  # decided already: this is a revision
                out.append(_attributed(key, walkin, revision=previous is not None))
    missed = (
        [
            g[0]
            for g in state.ghosts
            if _credits(event.sent_at_ns, g[1], rules) and _beats(candidate, g[2])
        ]
        if state.ghosts
        else None
    )
    if missed:
        error = (
            f"late: message {event.message_id!r} would have credited walk-in(s) "
            f"{', '.join(repr(w) for w in missed[:3])} already let go (allowed lateness passed)"
        )
        out.append(DeadLetter(origin, Reason.LATE, error))
    return expires


def _add_walkin(
    state: CustomerState,
    key: CustomerKey,
    event: WalkInEvent,
    origin: Origin,
    now_ns: int,
    rules: Rules,
    out: list[Output],
) -> int | None:
    """Add a walk-in; return its first deadline, or None for a duplicate."""
    walkin_id = event.walkin_id
    for w in state.walkins:
        if w.walkin_id == walkin_id:
            return None  # a duplicate
    for g in state.ghosts:
        if g[0] == walkin_id:
            return None  # a duplicate of a walk-in already let go
    walkin = _WalkIn(event, now_ns, rules)
    walkin.best = _best_message(state.messages, event.started_at_ns, rules)
    state.walkins.append(walkin)
    gone = state.forgotten
    if (
        gone
        and _credits(gone[0], event.started_at_ns, rules)
        and _beats(gone, _key_of(walkin.best))
    ):
        error = (
            f"late: walk-in {walkin_id!r} arrived after message {gone[1]!r}, which it would be "
            "attributed to, was let go (window + allowed lateness passed)"
        )
        out.append(DeadLetter(origin, Reason.LATE, error))
    return walkin.decide_at_ns


def _expire(
    state: CustomerState, key: CustomerKey, now_ns: int, rules: Rules, out: list[Output]
) -> None:
    """Decide due walk-ins, then let go of everything whose retention has passed."""
    kept: list[_WalkIn] = []
    for walkin in state.walkins:
        if walkin.pending and walkin.decide_at_ns <= now_ns:
            walkin.decide_at_ns = _DECIDED
            if walkin.best is not None:
                out.append(_attributed(key, walkin, revision=False, at_decision=True))
        if walkin.expires_at_ns > now_ns:
            kept.append(walkin)
        else:
            ghost = (
                walkin.walkin_id,
                walkin.started_at_ns,
                _key_of(walkin.best),
                walkin.expires_at_ns + rules.window_ns,
            )
            state.ghosts.append(ghost)
    state.walkins = kept
    if state.ghosts:
        state.ghosts = [g for g in state.ghosts if g[3] > now_ns]
    if state.messages and min(m[4] for m in state.messages) <= now_ns:
        gone = [m for m in state.messages if m[4] <= now_ns]
        state.messages = [m for m in state.messages if m[4] > now_ns]
        latest_gone = max((m[0], m[1]) for m in gone)
        if state.forgotten is None or latest_gone > state.forgotten:
            state.forgotten = latest_gone


def _attributed(
    key: CustomerKey, walkin: _WalkIn, *, revision: bool, at_decision: bool = False
) -> Attributed:
    message = walkin.best
    if message is None:  # callers emit only attributed walk-ins
        msg = f"walk-in {walkin.walkin_id!r} has no attribution to emit"
        raise RuntimeError(msg)
    sent_at_ns, message_id, channel, campaign_id, _ = message
    walkthrough = Walkthrough(
        walkin.walkin_id,
        key[0],
        key[1],
        walkin.location_id,
        walkin.started_at_ns,
        message_id,
        channel,
        campaign_id,
        sent_at_ns,
        walkin.local_date,
    )
    return Attributed(walkthrough, walkin.read_at_ns, revision, at_decision)
