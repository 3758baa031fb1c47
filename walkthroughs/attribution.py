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
import struct
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final
from zlib import crc32

import zstandard

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

STATE_SHARDS = 1024
"""How many state keys hold all customers. Part of the recovery format: changing it re-routes
customers to other shards, so it needs a fresh recovery store (or a migration)."""

STATE_FORMAT = 3
"""Version of the pickled shard layout below; a snapshot of another version is refused with a
message instead of being misread. 3 holds customers packed (``Shard``); 2, the same records
unpacked, is still read; 1 was the object-per-walk-in layout of the first release."""

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


def customer_hash(business_id: str, customer_id: str) -> int:
    """Return a 32-bit hash of a customer, stable across processes, runs and machines.

    crc32 of ``<len(business) in bytes>:<business><customer>`` (UTF-8); the business part is
    computed once per business (crc32 chains).
    """
    prefix = _BUSINESS_CRC.get(business_id)
    if prefix is None:
        if len(_BUSINESS_CRC) >= _BUSINESS_CRC_MAX:
            _BUSINESS_CRC.clear()
        b = business_id.encode()
        prefix = _BUSINESS_CRC[business_id] = crc32(b"%d:%s" % (len(b), b))
    return crc32(customer_id.encode(), prefix)


def shard_of(business_id: str, customer_id: str) -> str:
    """Return the state key of a customer (``customer_hash`` over the shards, names made once)."""
    return _SHARD_NAMES[customer_hash(business_id, customer_id) % STATE_SHARDS]


_SHARD_NAMES = tuple(f"{i:04d}" for i in range(STATE_SHARDS))
_BUSINESS_CRC: dict[str, int] = {}
_BUSINESS_CRC_MAX = 100_000  # bounded: starts over when full


class CustomerState:
    """Everything retained for one (business, customer).

    Containers are tuples, replaced on change (a customer holds a handful of events): an empty
    one is the shared ``()``, and tuples weigh less than lists and pickle without Python calls.
    Invariants: ``messages`` is sorted and holds each message_id once; no walkin_id is in both
    ``walkins`` and ``ghosts``; ``forgotten`` is the greatest message key let go, if any;
    ``due_ns`` is the deadline of the customer's live timer (None: no timer). ``gen`` is the
    shard's snapshot generation when the object was made: an object of an older generation may
    be held by a snapshot, so the shard writes a copy of it instead (``Shard._take``).
    """

    __slots__ = ("due_ns", "forgotten", "gen", "ghosts", "messages", "walkins")

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

    def copy(self, gen: int) -> CustomerState:
        """The same records (immutable tuples, so shared) in a new object of generation ``gen``."""
        state = CustomerState(self.messages, self.walkins, self.ghosts, self.forgotten)
        state.due_ns = self.due_ns
        state.gen = gen
        return state

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

    A customer is *live* (a ``CustomerState``) from the moment it is touched until it is packed;
    otherwise it is *packed*: ``_HEAD`` (its timer's deadline) followed by its records pickled,
    one bytes object. Packed, a customer takes about a third of the memory, and a snapshot
    copies those bytes rather than pickling every record again at every epoch: at 1M customers
    that was 2.4 s of CPU per epoch. A shard larger than ``LIVE_CUSTOMERS`` packs at every
    snapshot (``snapshot``) and when too many are live (``pack``); touching a packed customer
    unpickles it (a few us on a large state, cache misses included).

    Timers are buckets: ``_timers`` maps a deadline to the customers due then, ``_heap`` orders
    the deadlines. Events read together share their deadlines, so a customer costs one list slot
    rather than a heap tuple. A customer's ``due_ns`` (in ``_HEAD`` when packed) is the deadline
    of its live timer; it is never later than the customer's real next deadline, so no deadline
    is missed. Timer entries whose deadline no longer matches it are stale and skipped. Timers
    are not pickled: they are rebuilt from the heads on restore.
    """

    __slots__ = (
        "_decide_by",
        "_gen",
        "_heap",
        "_live",
        "_packed",
        "_packed_messages",
        "_packed_walkins",
        "_timers",
    )

    def __init__(self) -> None:
        self._live: dict[CustomerKey, CustomerState] = {}
        self._packed: dict[CustomerKey, bytes] = {}
        self._packed_messages = 0  # retained in packed customers (the gauges need counts)
        self._packed_walkins = 0
        self._decide_by = _NO_DUE  # no walk-in's first decision is due after this (decide_all)
        self._gen = 0  # snapshots taken: live customers of an older generation are copy-on-write
        self._timers: dict[int, list[CustomerKey]] = {}
        self._heap: list[int] = []

    def __getstate__(self) -> tuple[Any, ...]:
        return ShardSnapshot(self).state()  # live customers stay live: packed copies

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        version = state[0]
        Shard.__init__(self)  # the same empty start as a new shard
        if version == STATE_FORMAT:
            _, self._packed, live, self._packed_messages, self._packed_walkins, decide_by = state
            self._packed.update(live)
            self._decide_by = decide_by
        elif version == _UNPACKED_FORMAT:  # the previous release: pack its rows
            for key, *records in state[1]:
                self._packed[key] = _pack(_settled(*records))
                self._packed_messages += len(records[0])
                self._packed_walkins += len(records[1])
        else:
            msg = (
                f"recovery snapshot has state format {version}, this version reads "
                f"{STATE_FORMAT} and {_UNPACKED_FORMAT}: start from a fresh recovery store or run "
                "the matching version"
            )
            raise ValueError(msg)
        for key, blob in self._packed.items():
            due = _packed_due(blob)
            if due is not None:
                self._add_timer(key, due)
        if version == _UNPACKED_FORMAT:  # it did not keep the bound: every timer is a candidate
            self._decide_by = max(self._heap, default=_NO_DUE)

    def __len__(self) -> int:
        return len(self._live) + len(self._packed)

    def retained(self) -> tuple[int, int]:
        """Count the (messages, walk-ins) held: O(live customers)."""
        messages, walkins = self._packed_messages, self._packed_walkins
        for state in self._live.values():
            messages += len(state.messages)
            walkins += len(state.walkins)
        return messages, walkins

    def customer(self, key: CustomerKey) -> CustomerState | None:
        """Return a customer's state to look at (tests, tools): a copy if it is packed."""
        state = self._live.get(key)
        if state is None:
            blob = self._packed.get(key)
            state = None if blob is None else _unpack(blob)
        return state

    def pack(self, *, keep: int = 0) -> None:
        """Pack live customers, the longest live first, if more than ``keep`` are live.

        Down to ``keep // 2``, so that packing runs once per ``keep // 2`` customers touched,
        not at every batch. The dataflow calls it after every batch with ``LIVE_CUSTOMERS``.
        """
        live = self._live
        if len(live) <= keep:
            return
        packed = self._packed
        messages = walkins = 0
        for key in list(islice(live, len(live) - keep // 2)):  # dicts keep insertion order
            state = live.pop(key)
            packed[key] = _pack(state)
            messages += len(state.messages)
            walkins += len(state.walkins)
        self._packed_messages += messages
        self._packed_walkins += walkins

    def snapshot(self) -> ShardSnapshot:
        """Return the shard as of now, for a recovery snapshot: later changes cannot reach it.

        A large shard (more than ``LIVE_CUSTOMERS``) packs its live customers in place first:
        most are not touched again before the next snapshot, which then takes their bytes as
        they are. The snapshot itself is cheap (a copy of references to immutable records);
        the work of serializing it happens only if Bytewax stores it (``ShardSnapshot``).
        """
        if len(self) > LIVE_CUSTOMERS:
            self.pack()
        snapshot = ShardSnapshot(self)
        self._gen += 1  # the live customers it holds are not changed any more, only copied
        return snapshot

    def dump(self) -> bytes:
        """Serialize a snapshot of the shard now (what a recovery store keeps of it)."""
        return self.snapshot().blob()

    @staticmethod
    def restore(blob: bytes) -> Shard:
        """Rebuild a shard (and its timers) from ``dump`` output (or a bare pickle: format 2)."""
        if blob[:4] == _ZSTD_MAGIC:
            blob = zstandard.ZstdDecompressor().decompress(blob)
        restored = pickle.loads(blob)
        if isinstance(restored, tuple):  # ShardSnapshot.state()
            shard = Shard.__new__(Shard)
            shard.__setstate__(restored)
            return shard
        if not isinstance(restored, Shard):
            msg = f"recovery snapshot holds {type(restored).__name__}, not a Shard"
            raise TypeError(msg)
        return restored

    @staticmethod
    def resumed(stored: object) -> Shard:
        """Return the shard of what Bytewax resumes a state key with.

        A stored ``ShardSnapshot`` unpickles as its ``Shard``; releases before it stored bytes.
        """
        if isinstance(stored, Shard):
            return stored
        if isinstance(stored, bytes):
            return Shard.restore(stored)
        msg = f"recovery snapshot of a shard is a {type(stored).__name__}"
        raise TypeError(msg)

    def apply(
        self, event: MessageEvent | WalkInEvent, origin: Origin, now_ns: int, rules: Rules
    ) -> list[Output]:
        """Take one event read at ``now_ns``; return what it decides (walkthroughs, late)."""
        key = customer_key(event.business_id, event.customer_id)
        state = self._live.get(key)
        if state is None or state.gen != self._gen:
            state = self._take(key)
        out: list[Output] = []
        if isinstance(event, MessageEvent):
            added = _add_message(state, key, event, origin, now_ns, rules, out)
        else:
            added = _add_walkin(state, key, event, origin, now_ns, rules, out)
            if added is not None and added > self._decide_by:
                self._decide_by = added
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
                state = self._due(key, due)
                if state is None:
                    continue  # stale: the customer was discarded or has a newer timer
                state.due_ns = None
                _expire(state, key, now_ns, rules, out)
                self._settle(key, state)  # its next deadline is after now: another bucket
        return out

    def decide_all(self, now_ns: int, rules: Rules) -> list[Output]:
        """Make every pending first decision now (end of input in bounded mode).

        Only customers with a timer due by ``_decide_by`` can hold a pending walk-in (a
        customer's timer is never later than its walk-ins' decisions): the others are left
        packed.
        """
        out: list[Output] = []
        candidates = [
            (due, key) for due in self._heap if due <= self._decide_by for key in self._timers[due]
        ]
        for due, key in candidates:
            state = self._due(key, due)
            if state is None:
                continue  # stale
            _expire(state, key, now_ns, rules, out, decide_pending=True)
            state.due_ns = None
            self._settle(key, state)
            self.pack(keep=LIVE_CUSTOMERS)  # not every customer unpacked at once
        return out

    def next_deadline_ns(self) -> int | None:
        """Return when ``expire`` next has something to do (possibly early, never late)."""
        return self._heap[0] if self._heap else None

    def _take(self, key: CustomerKey) -> CustomerState:
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
            state = CustomerState()
        else:
            state = _unpack(blob)
            self._packed_messages -= len(state.messages)
            self._packed_walkins -= len(state.walkins)
        state.gen = self._gen
        self._live[key] = state
        return state

    def _due(self, key: CustomerKey, due: int) -> CustomerState | None:
        """Return the live customer whose timer is ``due``; None if that timer is stale."""
        state = self._live.get(key)
        if state is None:
            blob = self._packed.get(key)
            if blob is None or _packed_due(blob) != due:
                return None
        elif state.due_ns != due:
            return None
        return self._take(key)

    def _settle(self, key: CustomerKey, state: CustomerState) -> None:
        if state.is_empty():
            del self._live[key]
        else:
            deadline = state.next_deadline_ns()
            if deadline is not None:
                self._schedule_at(key, state, deadline)

    def _schedule_at(self, key: CustomerKey, state: CustomerState, deadline: int) -> None:
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


LIVE_CUSTOMERS = 512
"""A shard with more customers packs them all at each snapshot, and keeps at most this many live
between snapshots (see ``Shard.pack``); a smaller shard never packs. At the k8s interval (5 s)
a large state's live customers are those touched since the last snapshot; this bounds them when
epochs are long: 512k per process at most."""

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame starts with it; a bare pickle with b"\x80"
_COMPRESSORS = threading.local()  # a zstd context is not safe to share between worker threads


def _zstd() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_COMPRESSORS, "zstd", None)
    if compressor is None:
        compressor = _COMPRESSORS.zstd = zstandard.ZstdCompressor(level=1)
    return compressor


_UNPACKED_FORMAT = 2  # STATE_FORMAT 2: (key, messages, walkins, ghosts, forgotten) rows
_HEAD = struct.Struct("<q")  # a packed customer starts with its timer's deadline (ns)
_NO_DUE = -(2**63)  # ... or this, when it has no timer


class ShardSnapshot:
    """A shard as it was at ``Shard.snapshot``; immutable, serialized only when stored.

    Packed customers are bytes, immutable; live customers are held as the objects they are, which
    the shard never changes afterwards (it writes copies: ``Shard._take``). So holding
    references is a copy. Bytewax pickles a snapshot only when recovery is on: then
    ``__reduce__`` packs the live customers, compresses the lot (zstd level 1, ~4x: under load
    every shard is snapshotted at every epoch, and an epoch's snapshots are all in memory at
    once on their way to the store) and unpickles as the restored ``Shard``. Without recovery
    a snapshot costs no serialization at all.
    """

    __slots__ = ("_blob", "_decide_by", "_live", "_packed", "retained")

    def __init__(self, shard: Shard) -> None:
        self._packed = dict(shard._packed)  # bytes are immutable
        self._live = dict(shard._live)  # not changed after this: copy-on-write (Shard._take)
        self.retained = shard.retained()  # (messages, walk-ins)
        self._decide_by = shard._decide_by
        self._blob: bytes | None = None

    def state(self) -> tuple[Any, ...]:
        """The pickled layout (``STATE_FORMAT``): every customer packed, the counts, the bound."""
        live = {key: _pack(state) for key, state in self._live.items()}
        return (STATE_FORMAT, self._packed, live, *self.retained, self._decide_by)

    def blob(self) -> bytes:
        """The snapshot serialized and compressed (computed once)."""
        if self._blob is None:
            raw = pickle.dumps(self.state(), protocol=pickle.HIGHEST_PROTOCOL)
            self._blob = _zstd().compress(raw)
        return self._blob

    def __reduce__(self) -> tuple[Any, ...]:
        return Shard.restore, (self.blob(),)


def _pack(state: CustomerState) -> bytes:
    head = _HEAD.pack(_NO_DUE if state.due_ns is None else state.due_ns)
    row = (state.messages, state.walkins, state.ghosts, state.forgotten)
    return head + pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)


def _packed_due(blob: bytes) -> int | None:
    """The deadline of a packed customer's timer (its head), without unpickling it."""
    due: int = _HEAD.unpack_from(blob)[0]
    return None if due == _NO_DUE else due


def _unpack(blob: bytes) -> CustomerState:
    """The inverse of ``_pack`` (pickle keeps a walk-in's ``best`` the very stored message)."""
    state = CustomerState(*pickle.loads(memoryview(blob)[_HEAD.size :]))
    state.due_ns = _packed_due(blob)
    return state


def _settled(
    messages: tuple[StoredMessage, ...],
    walkins: tuple[WalkIn, ...],
    ghosts: tuple[Ghost, ...],
    forgotten: AttributionKey | None,
) -> CustomerState:
    """A customer of a format-2 snapshot, with its timer's deadline set."""
    state = CustomerState(messages, walkins, ghosts, forgotten)
    state.due_ns = state.next_deadline_ns()
    return state


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
