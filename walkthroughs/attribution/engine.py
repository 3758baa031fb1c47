"""The one engine loop: a batch of events into a shard, out come its decisions (no I/O).

The Bytewax adapter (``flow.AttributeLogic``), the raw-loop and engine benchmarks and the
property tests all run attribution through these functions, so what is measured and tested is
what the dataflow runs: apply each event, decide and let go of what fell due, pack, and emit at
most one walkthrough per walk-in.
"""

from __future__ import annotations

from collections.abc import Iterable

from walkthroughs.attribution.batch import Batch, Output
from walkthroughs.attribution.keys import shard_of
from walkthroughs.attribution.rules import Rules
from walkthroughs.attribution.store import Shard
from walkthroughs.wire.schema import ErasureRequest, MessageEvent, Origin, WalkInEvent

Event = tuple[MessageEvent | WalkInEvent | ErasureRequest, Origin]


def process_batch(store: Shard, events: Iterable[Event], now_ns: int, rules: Rules) -> list[Output]:
    """Apply ``events``, all read at ``now_ns``, then whatever fell due; return the outputs.

    With no events this is a timer tick. Revisions are coalesced over the whole batch.
    """
    batch = Batch(now_ns, rules)
    run(store, events, batch)
    return batch.outputs()


def run(store: Shard, events: Iterable[Event], batch: Batch) -> None:
    """The loop itself: each event in turn, then what fell due, then the shard packs itself."""
    apply = store.apply
    for event, origin in events:
        apply(event, origin, batch)
    store.expire(batch)
    store.end_batch()


def finish(store: Shard, now_ns: int, rules: Rules) -> list[Output]:
    """Make every pending first decision (end of input in bounded mode); return the outputs."""
    batch = Batch(now_ns, rules)
    store.decide_all(batch)
    return batch.outputs()


class Engine:
    """Every shard of one process in memory, routed as the dataflow routes its state keys.

    For what runs the engine without Bytewax: benchmarks, the raw loop, property tests. A shard
    gets a batch when events reach it, and a timer tick when its next deadline has passed, as
    the dataflow's ``notify_at`` would give it.
    """

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.shards: dict[str, Shard] = {}

    def process(self, events: Iterable[Event], now_ns: int) -> list[Output]:
        """Route a batch of events to their shards, process each, tick the others that are due."""
        routed: dict[str, list[Event]] = {}
        for item in events:
            event = item[0]
            shard_events = routed.get(key := shard_of(event.business_id, event.customer_id))
            if shard_events is None:
                routed[key] = [item]
            else:
                shard_events.append(item)
        batch = Batch(now_ns, self.rules)  # one for all shards: they share the instant
        for key, shard_events in routed.items():
            shard = self.shards.get(key)
            if shard is None:
                shard = self.shards[key] = Shard()
            run(shard, shard_events, batch)
        for key, shard in self.shards.items():
            due = shard.next_deadline_ns()
            if due is not None and due <= now_ns and key not in routed:
                run(shard, (), batch)
        return batch.outputs()

    def finish(self, now_ns: int) -> list[Output]:
        """End of input: every pending first decision, in every shard."""
        batch = Batch(now_ns, self.rules)
        for shard in self.shards.values():
            shard.decide_all(batch)
        return batch.outputs()
