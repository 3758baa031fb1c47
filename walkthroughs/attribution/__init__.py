"""Attribution, early then exact: pure logic over per-customer state (no I/O, no Bytewax).

In data-path order:

* ``rules``: the timing parameters and the deadlines they give;
* ``keys``: a customer's key and its state shard;
* ``records``: the layouts of retained messages, walk-ins and ghosts;
* ``batch``: one batch's instant and its decisions, coalesced per walk-in;
* ``customer``: the rule for one customer with few events (tuples);
* ``crowded``: the same rule over sorted indexes, for hot keys (O(log n) per event);
* ``start_index``: walk-ins by start time, to find those a new message beats without the rest;
* ``store``: a shard of customers, live or packed, copy-on-write, with timers;
* ``snapshot``: the recovery format (version, compression, restore);
* ``engine``: the one loop everything runs: ``process_batch``;
* ``claims``: the walk-in id registry: which customer an id belongs to (its own route, ahead of
  the customers').
"""

from __future__ import annotations

from walkthroughs.attribution.batch import Output
from walkthroughs.attribution.engine import Engine, Event, finish, process_batch
from walkthroughs.attribution.keys import (
    STATE_SHARDS,
    CustomerKey,
    customer_hash,
    customer_key,
    erasure_reference,
    shard_of,
    shard_of_hash,
    split_customer_key,
)
from walkthroughs.attribution.rules import Rules
from walkthroughs.attribution.store import LIVE_CUSTOMERS, Shard, ShardSnapshot

__all__ = [
    "LIVE_CUSTOMERS",
    "STATE_SHARDS",
    "CustomerKey",
    "Engine",
    "Event",
    "Output",
    "Rules",
    "Shard",
    "ShardSnapshot",
    "customer_hash",
    "customer_key",
    "erasure_reference",
    "finish",
    "process_batch",
    "shard_of",
    "shard_of_hash",
    "split_customer_key",
]
