"""The attribution rule, early then exact, as pure logic over per-customer state.

No I/O, no Bytewax: every decision is a function of (state, event, now), with ``now`` the injected
processing time in nanoseconds. Event time (``sent_at``, ``started_at``) decides attribution;
processing time decides only hold and retention.

The rule (contract): walk-in W of (business b, customer c) at t = ``started_at`` is attributed to
the message M of the same (b, c) with ``t - window < sent_at <= t`` and the greatest
``(sent_at, message_id)`` (ids compare by code point, which is UTF-8 byte order).

Lifecycle, per (b, c):

* A message is kept for ``window + allowed_lateness`` after it is read; a walk-in for
  ``allowed_lateness``. Deadlines are absolute and stored with the event when it is read (a
  walk-in stores one at a time: its decision, then its release).
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
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Final
from zlib import crc32

from walkthroughs.schema import (
    Attributed,
    DeadLetter,
    MessageEvent,
    Origin,
    Reason,
    WalkInEvent,
    new_attributed,
    new_walkthrough,
)
from walkthroughs.sharing import shared

STATE_SHARDS = 1024
"""How many state keys hold all customers. Part of the recovery format: changing it re-routes
customers to other shards, so it needs a fresh recovery store (or a migration)."""

STATE_FORMAT = 2
"""Version of the pickled shard layout below; a snapshot of another version is refused with a
message instead of being misread. 1 was the object-per-walk-in layout of the first release."""

Output = Attributed | DeadLetter
CustomerKey = str  # see customer_key

# State records are plain tuples read by index: the smallest Python records, pickled entirely in
# C (a NamedTuple or an object with slots costs a Python call per record at every snapshot).

# A stored message: (sent_at_ns, message_id, channel, campaign_id, expires_at_ns). Tuples sort by
# (sent_at_ns, message_id) first, which is the rule's order; ids are unique within a customer.
StoredMessage = tuple[int, str, int, str, int]
M_SENT: Final = 0
M_ID: Final = 1
M_CHANNEL: Final = 2
M_CAMPAIGN: Final = 3
M_EXPIRES: Final = 4
AttributionKey = tuple[int, str]  # (sent_at_ns, message_id) of the message a walk-in credits
# A retained walk-in: (walkin_id, started_at_ns, location_id, local_date, best, due_ns, decided).
# ``best`` is the stored message it credits so far; ``due_ns`` is read + hold while its first
# decision is pending, then read + allowed lateness (when it is let go): one timestamp, not three.
WalkIn = tuple[str, int, str, str, StoredMessage | None, int, bool]
W_ID: Final = 0
W_STARTED: Final = 1
W_LOCATION: Final = 2
W_DATE: Final = 3
W_BEST: Final = 4
W_DUE: Final = 5
W_DECIDED: Final = 6
# A walk-in let go: (walkin_id, started_at_ns, attribution or None, expires_at_ns).
Ghost = tuple[str, int, AttributionKey | None, int]
G_ID: Final = 0
G_STARTED: Final = 1
G_KEY: Final = 2
G_EXPIRES: Final = 3


@dataclass(frozen=True)
class Rules:
    """The timing parameters, in nanoseconds; see the module docstring."""

    window_ns: int
    hold_ns: int
    lateness_ns: int
    # The last deadlines computed (see read_deadlines, release_at); not a parameter.
    _last: list[tuple[int, int, int]] = field(
        default_factory=lambda: [(-1, 0, 0), (-1, 0, 0)], init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        """Reject values the lifecycle cannot honour."""
        if self.window_ns <= 0:
            msg = f"window must be positive, got {self.window_ns} ns"
            raise ValueError(msg)
        if not 0 <= self.hold_ns <= self.lateness_ns:
            msg = f"need 0 <= hold <= allowed lateness, got {self.hold_ns}, {self.lateness_ns} ns"
            raise ValueError(msg)

    def read_deadlines(self, now_ns: int) -> tuple[int, int]:
        """Return (message expiry, walk-in decision time) of an event read at ``now_ns``.

        Every event read at the same instant gets the same two int objects, not fresh ones:
        with a millisecond clock (``clock.system_now_ns``) that is dozens of events at high
        rates, and a timestamp int is ~40 bytes of every retained event otherwise.
        """
        last = self._last[0]  # one tuple swapped whole: consistent across worker threads
        if last[0] != now_ns:
            last = (now_ns, now_ns + self.window_ns + self.lateness_ns, now_ns + self.hold_ns)
            self._last[0] = last
        return last[1], last[2]

    def release_at(self, decide_at_ns: int) -> int:
        """Return when a walk-in whose decision was due at ``decide_at_ns`` is let go.

        Shared like ``read_deadlines``: walk-ins read together are decided together.
        """
        last = self._last[1]
        if last[0] != decide_at_ns:
            release = decide_at_ns - self.hold_ns + self.lateness_ns
            last = self._last[1] = (decide_at_ns, release, release)
        return last[1]


def customer_key(business_id: str, customer_id: str) -> CustomerKey:
    """Return the key of a customer within its shard: ``<len(business)>:<business><customer>``.

    The length prefix keeps it unambiguous whatever the ids hold. One string per retained
    customer rather than a tuple of two saves about a hundred bytes each.
    """
    return f"{len(business_id)}:{business_id}{customer_id}"


def split_customer_key(key: CustomerKey) -> tuple[str, str]:
    """Return the (business_id, customer_id) a ``customer_key`` was made of."""
    length, _, ids = key.partition(":")
    n = int(length)
    return ids[:n], ids[n:]


def shard_of(business_id: str, customer_id: str) -> str:
    """Return the state key of a customer: stable across processes, runs and machines.

    crc32 of ``<len(business) in bytes>:<business><customer>`` (UTF-8); the business part is
    computed once per business (crc32 chains), and the shard names are made once.
    """
    prefix = _BUSINESS_CRC.get(business_id)
    if prefix is None:
        if len(_BUSINESS_CRC) >= _BUSINESS_CRC_MAX:
            _BUSINESS_CRC.clear()
        b = business_id.encode()
        prefix = _BUSINESS_CRC[business_id] = crc32(b"%d:%s" % (len(b), b))
    return _SHARD_NAMES[crc32(customer_id.encode(), prefix) % STATE_SHARDS]


_SHARD_NAMES = tuple(f"{i:04d}" for i in range(STATE_SHARDS))
_BUSINESS_CRC: dict[str, int] = {}
_BUSINESS_CRC_MAX = 100_000  # bounded: starts over when full


class CustomerState:
    """Everything retained for one (business, customer).

    Containers are tuples, replaced on change (a customer holds a handful of events): an empty
    one is the shared ``()``, and tuples weigh less than lists and pickle without Python calls.
    Invariants: ``messages`` is sorted and holds each message_id once; no walkin_id is in both
    ``walkins`` and ``ghosts``; ``forgotten`` is the greatest message key let go, if any;
    ``due_ns`` is the deadline of the customer's live timer (None: no timer).
    """

    __slots__ = ("due_ns", "forgotten", "ghosts", "messages", "walkins")

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

    def is_empty(self) -> bool:
        """Nothing is left to decide or to recognise: the key can be discarded."""
        return not (self.messages or self.walkins or self.ghosts)

    def next_deadline_ns(self) -> int | None:
        """Return the earliest time something of this customer is due, if anything is."""
        times = [m[M_EXPIRES] for m in self.messages]
        times += [w[W_DUE] for w in self.walkins]
        times += [g[G_EXPIRES] for g in self.ghosts]
        return min(times) if times else None


class Shard:
    """The customers of one state key, with timers over their deadlines.

    Timers are buckets: ``_timers`` maps a deadline to the customers due then, ``_heap`` orders
    the deadlines. Events read together share their deadlines, so a customer costs one list slot
    rather than a heap tuple. A customer's ``due_ns`` is the deadline of its live timer; it is
    never later than the customer's real next deadline, so no deadline is missed. Timer entries
    whose deadline no longer matches ``due_ns`` are stale and skipped. Only the customers are
    pickled, as flat tuples (no Python code runs per object while pickling); the timers are
    rebuilt on restore.
    """

    __slots__ = ("_heap", "_timers", "customers")

    def __init__(self) -> None:
        self.customers: dict[CustomerKey, CustomerState] = {}
        self._timers: dict[int, list[CustomerKey]] = {}
        self._heap: list[int] = []

    def __getstate__(self) -> tuple[int, list[tuple[Any, ...]]]:
        rows: list[tuple[Any, ...]] = [
            (key, s.messages, s.walkins, s.ghosts, s.forgotten) for key, s in self.customers.items()
        ]
        return STATE_FORMAT, rows

    def __setstate__(self, state: tuple[int, list[tuple[Any, ...]]]) -> None:
        version, rows = state
        if version != STATE_FORMAT:
            msg = (
                f"recovery snapshot has state format {version}, this version reads "
                f"{STATE_FORMAT}: start from a fresh recovery store or run the matching version"
            )
            raise ValueError(msg)
        self.customers = {}
        self._timers = {}
        self._heap = []
        for key, messages, walkins, ghosts, forgotten in rows:
            state_ = CustomerState(*_reshared(messages, walkins), ghosts, forgotten)
            self.customers[key] = state_
            self._schedule(key, state_)

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
        key = customer_key(event.business_id, event.customer_id)
        state = self.customers.get(key)
        if state is None:
            state = self.customers[key] = CustomerState()
        out: list[Output] = []
        if isinstance(event, MessageEvent):
            added = _add_message(state, key, event, origin, now_ns, rules, out)
        else:
            added = _add_walkin(state, key, event, origin, now_ns, rules, out)
        due = state.due_ns
        if (due is not None and due <= now_ns) or (added is not None and added <= now_ns):
            _expire(state, key, now_ns, rules, out)  # something is due: the full pass
            state.due_ns = None  # its timer is stale now: schedule afresh
            self._settle(key, state)
        elif added is not None:  # the fast path: only the new event's deadlines are new
            self._schedule_at(key, state, added)
        return out

    def expire(self, now_ns: int, rules: Rules) -> list[Output]:
        """Make every decision and let go of everything due at ``now_ns``."""
        out: list[Output] = []
        heap = self._heap
        while heap and heap[0] <= now_ns:
            due = heapq.heappop(heap)
            for key in self._timers.pop(due):
                state = self.customers.get(key)
                if state is None or state.due_ns != due:
                    continue  # stale: the customer was discarded or has a newer timer
                state.due_ns = None
                _expire(state, key, now_ns, rules, out)
                self._settle(key, state)  # its next deadline is after now: another bucket
        return out

    def decide_all(self, now_ns: int, rules: Rules) -> list[Output]:
        """Make every pending first decision now (end of input in bounded mode)."""
        out: list[Output] = []
        for key, state in list(self.customers.items()):
            _expire(state, key, now_ns, rules, out, decide_pending=True)
            state.due_ns = None
            self._settle(key, state)
        return out

    def next_deadline_ns(self) -> int | None:
        """Return when ``expire`` next has something to do (possibly early, never late)."""
        return self._heap[0] if self._heap else None

    def _settle(self, key: CustomerKey, state: CustomerState) -> None:
        if state.is_empty():
            del self.customers[key]
        else:
            self._schedule(key, state)

    def _schedule(self, key: CustomerKey, state: CustomerState) -> None:
        deadline = state.next_deadline_ns()
        if deadline is not None:
            self._schedule_at(key, state, deadline)

    def _schedule_at(self, key: CustomerKey, state: CustomerState, deadline: int) -> None:
        """Make sure a timer no later than ``deadline`` exists for the customer."""
        current = state.due_ns
        if current is None or deadline < current:
            state.due_ns = deadline
            bucket = self._timers.get(deadline)
            if bucket is None:
                self._timers[deadline] = [key]
                heapq.heappush(self._heap, deadline)
            else:
                bucket.append(key)


def _reshared(
    messages: tuple[StoredMessage, ...], walkins: tuple[WalkIn, ...]
) -> tuple[tuple[StoredMessage, ...], tuple[WalkIn, ...]]:
    """Point restored records at the process-wide copies of campaigns, locations and dates.

    A snapshot is per shard, so unpickling makes one copy of each repeated string per shard:
    about a hundred bytes per restored customer, measured. A walk-in's ``best`` must stay the
    very tuple held in ``messages``, hence the mapping by identity.
    """
    renamed: dict[int, StoredMessage] = {}
    if any(m[M_CAMPAIGN] for m in messages):
        renamed = {id(m): (*m[:M_CAMPAIGN], shared(m[M_CAMPAIGN]), m[M_EXPIRES]) for m in messages}
        messages = tuple(renamed[id(m)] for m in messages)
    if walkins:
        walkins = tuple(
            (
                w[W_ID],
                w[W_STARTED],
                shared(w[W_LOCATION]),
                shared(w[W_DATE]),
                renamed.get(id(w[W_BEST]), w[W_BEST]),
                w[W_DUE],
                w[W_DECIDED],
            )
            for w in walkins
        )
    return messages, walkins


# ---------------------------------------------------------------------------------------------
# The rule, per customer
# ---------------------------------------------------------------------------------------------


def _credits(sent_at_ns: int, started_at_ns: int, rules: Rules) -> bool:
    """Tell whether a message sent then is in the window of a walk-in started then."""
    return started_at_ns - rules.window_ns < sent_at_ns <= started_at_ns


def _beats(candidate: AttributionKey, current: AttributionKey | None) -> bool:
    return current is None or candidate > current


def _key_of(message: StoredMessage | None) -> AttributionKey | None:
    return None if message is None else (message[M_SENT], message[M_ID])


def _best_message(
    messages: tuple[StoredMessage, ...], started_at_ns: int, rules: Rules
) -> StoredMessage | None:
    """The greatest message with ``sent_at`` in ``(t - window, t]``, or None."""
    # (t + 1,) sorts after every message sent at or before t and before any sent later.
    i = bisect_left(messages, (started_at_ns + 1,))
    if i and _credits(messages[i - 1][M_SENT], started_at_ns, rules):
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
    messages = state.messages
    for m in messages:
        if m[M_ID] == message_id:
            return None  # a duplicate: the first copy read is the one that counts
    sent = event.sent_at_ns
    expires, _ = rules.read_deadlines(now_ns)
    stored = (sent, message_id, event.channel, event.campaign_id, expires)
    i = bisect_left(messages, stored)
    state.messages = (*messages[:i], stored, *messages[i:])
    candidate = (sent, message_id)
    walkins = state.walkins
    for j, w in enumerate(walkins):
        if _credits(sent, w[W_STARTED], rules) and _beats(candidate, _key_of(w[W_BEST])):
            credited = (*w[:W_BEST], stored, *w[W_DUE:])
            walkins = (*walkins[:j], credited, *walkins[j + 1 :])
            if w[W_DECIDED]:  # decided already: this is a revision
                out.append(_attributed(key, credited, 0, revision=w[W_BEST] is not None))
    state.walkins = walkins
    missed = (
        [
            g[G_ID]
            for g in state.ghosts
            if _credits(sent, g[G_STARTED], rules) and _beats(candidate, g[G_KEY])
        ]
        if state.ghosts
        else None
    )
    if missed:
        error = (
            f"late: message {message_id!r} would have credited walk-in(s) "
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
        if w[W_ID] == walkin_id:
            return None  # a duplicate
    for g in state.ghosts:
        if g[G_ID] == walkin_id:
            return None  # a duplicate of a walk-in already let go
    started = event.started_at_ns
    best = _best_message(state.messages, started, rules)
    _, due = rules.read_deadlines(now_ns)
    state.walkins = (
        *state.walkins,
        (walkin_id, started, event.location_id, event.local_date, best, due, False),
    )
    gone = state.forgotten
    if gone and _credits(gone[0], started, rules) and _beats(gone, _key_of(best)):
        error = (
            f"late: walk-in {walkin_id!r} arrived after message {gone[1]!r}, which it would be "
            "attributed to, was let go (window + allowed lateness passed)"
        )
        out.append(DeadLetter(origin, Reason.LATE, error))
    return due


def _expire(
    state: CustomerState,
    key: CustomerKey,
    now_ns: int,
    rules: Rules,
    out: list[Output],
    *,
    decide_pending: bool = False,
) -> None:
    """Decide due walk-ins, then let go of everything whose retention has passed.

    ``decide_pending`` decides every pending walk-in, due or not (end of input).
    """
    ghosts = [g for g in state.ghosts if g[G_EXPIRES] > now_ns]
    if state.walkins:
        kept: list[WalkIn] = []
        for walkin in state.walkins:
            w = walkin
            if not w[W_DECIDED] and (decide_pending or w[W_DUE] <= now_ns):
                read_at = w[W_DUE] - rules.hold_ns
                w = (*w[:W_DUE], rules.release_at(w[W_DUE]), True)
                if w[W_BEST] is not None:
                    out.append(_attributed(key, w, read_at, revision=False, at_decision=True))
            if w[W_DECIDED] and w[W_DUE] <= now_ns:  # allowed lateness passed: let it go
                ghosts.append(
                    (w[W_ID], w[W_STARTED], _key_of(w[W_BEST]), w[W_DUE] + rules.window_ns)
                )
            else:
                kept.append(w)
        state.walkins = tuple(kept)
    state.ghosts = tuple(ghosts)
    for m in state.messages:
        if m[M_EXPIRES] <= now_ns:
            _forget_messages(state, now_ns)
            break


def _forget_messages(state: CustomerState, now_ns: int) -> None:
    """Let go of the messages whose retention has passed; remember the greatest let go."""
    messages = state.messages
    latest_gone = max((m[M_SENT], m[M_ID]) for m in messages if m[M_EXPIRES] <= now_ns)
    state.messages = tuple(m for m in messages if m[M_EXPIRES] > now_ns)
    if state.forgotten is None or latest_gone > state.forgotten:
        state.forgotten = latest_gone


def _attributed(
    key: CustomerKey, walkin: WalkIn, read_at_ns: int, *, revision: bool, at_decision: bool = False
) -> Attributed:
    """The walkthrough of an attributed walk-in (``read_at_ns`` matters only at its decision)."""
    message = walkin[W_BEST]
    if message is None:  # callers emit only attributed walk-ins
        msg = f"walk-in {walkin[W_ID]!r} has no attribution to emit"
        raise RuntimeError(msg)
    sent_at_ns, message_id, channel, campaign_id, _ = message
    business_id, customer_id = split_customer_key(key)
    walkthrough = new_walkthrough(
        (
            walkin[W_ID],
            business_id,
            customer_id,
            walkin[W_LOCATION],
            walkin[W_STARTED],
            message_id,
            channel,
            campaign_id,
            sent_at_ns,
            walkin[W_DATE],
        )
    )
    return new_attributed((walkthrough, read_at_ns, revision, at_decision))
