"""A Bytewax worker thread keeps its Python thread state once told to (``thread_state``).

Without it, pyo3 makes a new thread state for every callback that is not nested in another and
deletes it after: ``threading.local`` data is lost between callbacks, which is how this test
sees it (the cost is a mapped and unmapped frame stack each time: bench/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import cast

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, TestingSource, cluster_main

from walkthroughs.dataflow.flow import Cluster, WorkerCount

_cluster_main = cast(Callable[..., None], cluster_main)
_calls = threading.local()


class _Plain(DynamicSource[None]):
    """Reads nothing and leaves the thread state as pyo3 handles it."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Nothing:
        return _Nothing()


class _Nothing(StatelessSourcePartition[None]):
    def next_batch(self) -> list[None]:
        raise StopIteration


def _count(item: int) -> int:
    """How many callbacks this thread's ``threading.local`` has seen, this one included."""
    _calls.seen = getattr(_calls, "seen", 0) + 1
    return cast(int, _calls.seen)


def _counts(first: DynamicSource[None]) -> list[int]:
    flow = Dataflow("thread_state")
    op.input("first", flow, first)
    items = op.input("items", flow, TestingSource(list(range(30)), batch_size=1))
    seen: list[int] = []
    op.output("seen", op.map("count", items, _count), TestingSink(seen))
    _cluster_main(flow, [], 0, epoch_interval=timedelta(0), worker_count_per_proc=1)
    return seen


@pytest.mark.parametrize("keep", [False, True])
def test_a_worker_thread_keeps_its_state_once_the_flow_says_so(keep: bool) -> None:
    seen = _counts(WorkerCount(Cluster()) if keep else _Plain())
    if keep:  # the flow's first input keeps it: one state, every callback counted
        assert seen == list(range(1, 31))
    else:  # a new state at each callback: Bytewax's default, what the flow avoids
        assert max(seen) < 30
