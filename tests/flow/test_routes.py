"""Bytewax itself puts each route on the worker ``routes.worker_of`` says: what the names need."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import cast

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import TestingSink, TestingSource, cluster_main

from walkthroughs.utils.routes import NAMES, worker_of

_cluster_main = cast(Callable[..., None], cluster_main)


class _Where(StatefulBatchLogic[str, tuple[str, int], None]):
    """Reports, for each route it gets, the thread (the worker) it runs on."""

    def on_batch(self, values: list[str]) -> tuple[list[tuple[str, int]], bool]:
        return [(route, threading.get_ident()) for route in values], True

    def snapshot(self) -> None:
        return None


@pytest.mark.parametrize("workers", [3, 5])
def test_each_route_runs_on_the_worker_worker_of_gives(workers: int) -> None:
    flow = Dataflow("routes")
    routes = op.input("routes", flow, TestingSource([(name, name) for name in NAMES]))
    where = op.stateful_batch("where", routes, lambda _: _Where())
    seen: list[tuple[str, tuple[str, int]]] = []
    op.output("seen", where, TestingSink(seen))
    _cluster_main(flow, [], 0, epoch_interval=timedelta(0), worker_count_per_proc=workers)

    thread_of = {route: thread for _, (route, thread) in seen}
    assert set(thread_of) == set(NAMES)
    by_thread: dict[int, set[str]] = {}
    for route, thread in thread_of.items():
        by_thread.setdefault(thread, set()).add(route)
    predicted: dict[int, set[str]] = {}
    for route in NAMES:
        predicted.setdefault(worker_of(route, workers), set()).add(route)
    assert len(by_thread) == workers  # every worker holds routes
    assert sorted(map(sorted, by_thread.values())) == sorted(map(sorted, predicted.values()))
