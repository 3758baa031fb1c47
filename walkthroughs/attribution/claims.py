"""Which (business, customer) a walk-in id belongs to: the first to use it, while it matters.

The outputs are keyed by ``walkin_id`` alone (the Kafka key, the MongoDB ``_id``), but state is
per (business, customer): two customers sending the same id would each emit a walkthrough for
it, from different workers, and the Kafka topic and MongoDB could end up holding different ones
(and a daily count under each business for one document). So walk-ins pass through a registry
keyed by the id before they reach their customer: the first (business, customer) to use an id
*claims* it, and a walk-in that reuses a claimed id under another (business, customer) is a bad
record (``walkin_id reused``), dead-lettered with no other effect. A repeat of the id by its
owner is an ordinary duplicate and renews the claim.

A claim lasts ``allowed_lateness`` after the owner last used the id: as long as the owner's
walk-in can still emit walkthroughs (it is let go ``allowed_lateness`` after it is read). After
that the id is free again, and a new walk-in that uses it becomes the id's walkthrough in both
outputs (the MongoDB sink then moves the document to its new owner and recounts both days:
``sinks.mongo``).

Message ids need no registry: no output is keyed by ``message_id``, and a message only ever
counts for its own (business, customer).

Pure: no I/O, no Bytewax. A claim is one dict entry, ``walkin_id -> expiry << 32 | owner``,
with the expiry in whole seconds and the owner a 32-bit hash of the (business, customer)
(``attribution.customer_hash``): two owners of one id that share a hash (one reuse in four
billion) are not told apart, which is what the service did before it had a registry.
"""

from __future__ import annotations

from typing import Any
from zlib import crc32

from walkthroughs.utils.routes import NAMES as ROUTE_NAMES
from walkthroughs.utils.routes import ROUTES
from walkthroughs.wire.schema import DeadLetter, Origin, Reason

NS_PER_S = 1_000_000_000
_OWNER_BITS = 32
_OWNER_MASK = (1 << _OWNER_BITS) - 1
CLAIM_SHARDS = ROUTES
"""State keys of the registry, one per route (``walkthroughs.utils.routes``): few, so that each
key gets many walk-ins per batch (Bytewax calls the logic once per key and batch) and the recovery
store holds few rows, yet spread evenly over up to 24 workers. Part of the recovery format."""
CLAIMS_FORMAT = 2
"""Version of a route's snapshot, ``(CLAIMS_FORMAT, {walkin_id: claim})``. Format 1 was the
bare dict, under 64 keys named ``id-NN``: a store of it is refused (``Claims.resumed``)."""
ClaimsSnapshot = tuple[int, dict[str, int]]
_SHOWN_CHARS = 80
SWEEP_EVERY_S = 60
"""Expired claims are dropped by a sweep of the shard, at most this often: a lookup ignores an
expired claim anyway, so sweeping is only about memory."""


def id_shard(walkin_id: str) -> str:
    """Return the state key of a walk-in id in the registry (crc32 of its UTF-8)."""
    return ROUTE_NAMES[crc32(walkin_id.encode()) % CLAIM_SHARDS]


class Claims:
    """The claimed walk-in ids of one id shard (a state key of the ``claim_walkin_ids`` step)."""

    __slots__ = ("_claims", "_next_sweep_s")

    def __init__(self, claims: dict[str, int] | None = None) -> None:
        self._claims: dict[str, int] = claims if claims is not None else {}
        self._next_sweep_s = 0  # as soon as asked: a restored shard may hold expired claims

    def __len__(self) -> int:
        return len(self._claims)

    def claim(self, walkin_id: str, owner: int, now_ns: int, keep_ns: int) -> bool:
        """Claim ``walkin_id`` for ``owner``, or renew the owner's claim.

        Returns False if another owner holds it: the walk-in reuses the id.
        """
        now_s = now_ns // NS_PER_S
        held = self._claims.get(walkin_id)
        if held is not None and held >> _OWNER_BITS > now_s and held & _OWNER_MASK != owner:
            return False
        expires_s = -(-(now_ns + keep_ns) // NS_PER_S)  # rounded up: never shorter than keep
        self._claims[walkin_id] = expires_s << _OWNER_BITS | owner
        return True

    def sweep(self, now_ns: int) -> None:
        """Drop the claims that expired (rebuilding the dict also gives its memory back)."""
        now_s = now_ns // NS_PER_S
        self._claims = {i: c for i, c in self._claims.items() if c >> _OWNER_BITS > now_s}
        self._next_sweep_s = now_s + SWEEP_EVERY_S

    def next_sweep_ns(self) -> int | None:
        """Return when a sweep is next worth doing (None: nothing is claimed)."""
        return self._next_sweep_s * NS_PER_S if self._claims else None

    def snapshot(self) -> ClaimsSnapshot:
        """A copy for a recovery snapshot: ids and ints, pickled by C code alone."""
        return CLAIMS_FORMAT, dict(self._claims)

    @classmethod
    def resumed(cls, state: Any) -> Claims:
        """The route a snapshot (``snapshot``'s tuple) was taken of; another format is refused."""
        if not (isinstance(state, tuple) and len(state) == 2 and state[0] == CLAIMS_FORMAT):
            found: object = "?"
            if isinstance(state, dict):
                found = 1  # format 1 was the bare dict
            elif isinstance(state, tuple) and state:
                found = state[0]
            msg = (
                f"recovery snapshot of walk-in id claims has format {found}, this version reads "
                f"{CLAIMS_FORMAT}: start from a fresh recovery store or run the matching version"
            )
            raise ValueError(msg)
        return cls(dict(state[1]))


def reused(origin: Origin, walkin_id: str) -> DeadLetter:
    """The dead letter of a walk-in whose id another (business, customer) holds."""
    shown = walkin_id if len(walkin_id) <= _SHOWN_CHARS else walkin_id[:_SHOWN_CHARS] + "..."
    error = (
        f"walkin_id reused: {shown!r} belongs to another (business, customer), which used it "
        "within the allowed lateness"
    )
    return DeadLetter(origin, Reason.WALKIN_ID_REUSED, error)
