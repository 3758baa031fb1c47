"""Scale-out: CPU per event and wall rate at 1, 2 and 4 processes, beside the engine's floor.

Adding a pod must add throughput, so the figure is the CPU that all processes of the cluster
spend per event (user + system, read with ``getrusage(RUSAGE_CHILDREN)`` around the run): flat
as processes are added means each one adds its share. On a 2-core machine with the broker beside
the dataflow, wall rates above 2 processes mostly show contention; CPU per event does not depend
on the core count.

Every run is the bounded dataflow, Kafka -> Kafka (MongoDB off), over the same pre-produced
topics (``bench.e2e.prepare``: ~8% duplicates, ~2% bad), each process with 1 worker in the
cluster form the StatefulSet runs (``-i N -a host:port;...``), without and with recovery
(``-s 5``, a fresh store each run). A run over a few thousand records gives what starting and
stopping the processes costs (~0.5 s of CPU each): the ``net`` figure is the rest, what a
long-running deployment pays per event. Beside it, the minimal flow of ``bench.floor_flow`` with
one item per event and with lists of ~60: what Bytewax itself costs. Medians of ``--runs``.

Usage: python -m bench.scaleout [--events N] [--runs N] [--processes 1,2,4] [--no-recovery]
[--no-floor]. Needs the local stack (make up).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import NamedTuple

from confluent_kafka.admin import AdminClient

from bench.common import REPO, precompile, report
from bench.e2e import BOOTSTRAP, PARTITIONS, env, prepare
from walkthroughs.testing.ports import free_ports
from walkthroughs.testing.recovery import init_recovery


class Run(NamedTuple):
    """One run of a cluster: wall seconds from start to the last exit, CPU seconds of all."""

    wall_s: float
    cpu_s: float


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cluster(target: str, processes: int, environ: Mapping[str, str], *extra: str) -> Run:
    """Start ``processes`` processes of ``target`` (1 worker each) as one cluster; wait."""
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    cpu_before, started = children_cpu_s(), time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", target, "-i", str(i), "-a", addresses, *extra],
            cwd=REPO,
            env=dict(environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    errors = [proc.communicate(timeout=3600)[1] for proc in procs]
    wall_s = time.perf_counter() - started
    for proc, err in zip(procs, errors, strict=True):
        if proc.returncode != 0:
            raise SystemExit(f"{target} failed: {err[-2000:]}")
    return Run(wall_s, children_cpu_s() - cpu_before)


def measure(
    label: str, events: int, runs: int, once: Callable[[], Run], start_up: Run | None = None
) -> None:
    """Run ``once`` ``runs`` times; report the medians per event.

    ``start_up`` is a run of the same cluster over a few records: what starting and stopping
    the processes costs, which a long-running deployment pays once. The ``net`` figure takes
    it out.
    """
    results: list[Run] = [once() for _ in range(runs)]
    cpu_us = [r.cpu_s / events * 1e6 for r in results]
    rates = [events / r.wall_s for r in results]
    figures: dict[str, object] = {}
    if start_up is not None:
        net = [(r.cpu_s - start_up.cpu_s) / events * 1e6 for r in results]
        figures = {
            "cpu_us_per_event_net": round(statistics.median(net), 2),
            "start_up_cpu_s": round(start_up.cpu_s, 2),
        }
    report(
        "scaleout",
        flow=label,
        events=events,
        cpu_us_per_event=round(statistics.median(cpu_us), 2),
        events_per_s=round(statistics.median(rates)),
        **figures,
        runs_cpu_us=[round(c, 2) for c in cpu_us],
        runs_events_per_s=[round(r) for r in rates],
    )


def dataflow_once(name: str, processes: int, recovery: bool) -> Run:
    environ = env(name, mongo=False)
    if not recovery:
        return run_cluster("dataflow", processes, environ)
    with tempfile.TemporaryDirectory(prefix="scaleout-recovery-") as folder:
        store = init_recovery(Path(folder), max(processes, 4))
        return run_cluster("dataflow", processes, environ, "-r", str(store), "-s", "5", "-b", "0")


def floor_once(processes: int, events: int, mode: str) -> Run:
    environ = {**os.environ, "FLOOR_EVENTS": str(events), "FLOOR_MODE": mode}
    return run_cluster("bench.floor_flow:flow", processes, environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=350_000)
    parser.add_argument("--floor-events", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument("--no-floor", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    precompile()
    name = f"scaleout-{int(time.time())}"
    few = f"{name}-few"
    try:
        records = prepare(name, args.events)
        prepare(few, 0)  # the generator's least: a few thousand records
        for processes in counts:
            for recovery in (False,) if args.no_recovery else (False, True):
                label = f"dataflow {processes}p" + (" -s 5" if recovery else "")
                once = partial(dataflow_once, name, processes, recovery)
                start_up = dataflow_once(few, processes, recovery)
                measure(label, records, args.runs, once, start_up)
            if not args.no_floor:
                for mode in ("items", "lists"):
                    measure(
                        f"floor {mode} {processes}p",
                        args.floor_events // 4 * 4,
                        args.runs,
                        partial(floor_once, processes, args.floor_events, mode),
                    )
    finally:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_topics(
            [f"{n}-{s}" for n in (name, few) for s in PARTITIONS]
        )


if __name__ == "__main__":
    main()
