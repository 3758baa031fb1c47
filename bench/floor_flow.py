"""The engine's floor: a minimal Bytewax flow shaped like ours, doing nothing but moving items.

A partitioned source of 4 partitions yields batches of 1,000 small tuples
``(key, (str, str, int, 40 bytes))``; two ``stateful_batch`` steps pass them on, with a re-key
between them (so both hops exchange); a sink drops them. ``FLOOR_MODE=items`` moves one item
per event over 1,024 keys; ``FLOOR_MODE=lists`` groups each batch by key into lists of about
60 events (16 keys a batch), as a batch-first dataflow does. What it costs per event is what
Bytewax itself costs, below which no dataflow of ours can go (``bench.scaleout``).

Run: ``FLOOR_EVENTS=400000 FLOOR_MODE=items python -m bytewax.run bench.floor_flow:flow``.
"""

from __future__ import annotations

import os
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition

PARTITIONS = 4
BATCH = 1000
ITEM_KEYS = 1024
LIST_KEYS = 16
PAYLOAD = b"x" * 40


class _Partition(StatefulSourcePartition[Any, int]):
    def __init__(self, index: int, events: int, lists: bool) -> None:
        self._index = index
        self._left = events
        self._lists = lists
        self._sent = 0

    def next_batch(self) -> list[Any]:
        if self._left <= 0:
            raise StopIteration
        n = min(BATCH, self._left)
        self._left -= n
        first = self._sent
        self._sent += n
        numbers = range(first, first + n)
        events = [(f"id-{i}", f"b-{i % 97}", i, PAYLOAD) for i in numbers]
        if not self._lists:
            return [(str(i % ITEM_KEYS), e) for i, e in zip(numbers, events, strict=True)]
        grouped: dict[str, list[Any]] = {}
        for i, e in zip(numbers, events, strict=True):
            grouped.setdefault(str(i % LIST_KEYS), []).append(e)
        return list(grouped.items())

    def snapshot(self) -> int:
        return self._sent


class _Source(FixedPartitionedSource[Any, int]):
    def __init__(self, events: int, lists: bool) -> None:
        self._per_part = events // PARTITIONS
        self._lists = lists

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(PARTITIONS)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        return _Partition(int(for_part), self._per_part, self._lists)


class _PassOn(StatefulBatchLogic[Any, Any, None]):
    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        return values, False

    def snapshot(self) -> None:
        return None


class _Drop(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


class _NullSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Drop:
        return _Drop()


def _rekey(item: tuple[str, Any]) -> tuple[str, Any]:
    return item[0] + "'", item[1]


def build() -> Dataflow:
    """The floor flow, sized by ``FLOOR_EVENTS`` and shaped by ``FLOOR_MODE``."""
    lists = os.environ.get("FLOOR_MODE", "items") == "lists"
    events = int(os.environ.get("FLOOR_EVENTS", "400000"))
    flow = Dataflow("floor")
    items = op.input("inp", flow, _Source(events, lists))
    first = op.stateful_batch("hop1", items, lambda _: _PassOn())
    second = op.stateful_batch("hop2", op.map("rekey", first, _rekey), lambda _: _PassOn())
    op.output("out", second, _NullSink())
    return flow


flow = build()
