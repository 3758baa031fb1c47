"""Where a customer's state lives: its key within a shard, and its shard (no I/O, no state).

Customers are grouped into ``STATE_SHARDS`` shards, the state keys of the dataflow: Bytewax 0.21
never deletes the recovery rows of discarded keys, so the number of state keys must stay bounded
while millions of customers come and go; and few keys make large parcels
(``walkthroughs.utils.routes``).
"""

from __future__ import annotations

from hashlib import blake2b
from zlib import crc32

from walkthroughs.utils.caches import BoundedCache
from walkthroughs.utils.routes import NAMES as ROUTE_NAMES
from walkthroughs.utils.routes import ROUTES

STATE_SHARDS = ROUTES
"""How many state keys hold all customers (one per route: ``walkthroughs.utils.routes``). Part
of the recovery format: changing it re-routes customers to other shards, so it needs a fresh
recovery store (``snapshot.STATE_FORMAT`` says which)."""

CustomerKey = str  # see customer_key


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
        b = business_id.encode()
        prefix = _BUSINESS_CRC.put(business_id, crc32(b"%d:%s" % (len(b), b)))
    return crc32(customer_id.encode(), prefix)


def erasure_digest(key: CustomerKey) -> bytes:
    """Return a 128-bit digest of a customer key: what state keeps of an erased customer.

    Wide enough that no two customers share one (a ``customer_hash`` collision would drop
    another customer's events), and it holds no id in clear.
    """
    return blake2b(key.encode(), digest_size=16).digest()


def erasure_reference(business_id: str, customer_id: str) -> str:
    """Return how audit lines name an erased customer: 16 hex digits of its digest, no id.

    ``erase`` prints it, so an operator can match a request with its audit lines.
    """
    return erasure_digest(customer_key(business_id, customer_id)).hex()[:16]


def shard_of(business_id: str, customer_id: str) -> str:
    """Return the state key of a customer (``customer_hash`` over the shards, names made once)."""
    return shard_of_hash(customer_hash(business_id, customer_id))


def shard_of_hash(hashed: int) -> str:
    """Return the state key of the customer whose ``customer_hash`` is ``hashed``."""
    return ROUTE_NAMES[hashed % STATE_SHARDS]


_BUSINESS_CRC: BoundedCache[str, int] = BoundedCache("business_crc", 100_000)
