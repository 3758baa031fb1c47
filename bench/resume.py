"""Scale and recovery in the real dataflow: 1 million live customer keys, then a resume.

1. Build: traffic for about ``--keys`` live customers is produced to the real broker, and the
   dataflow (1 worker, recovery on, bounded mode) reads all of it. Reported: peak RSS of the
   process, events/s, and what the recovery store holds afterwards (size on disk, customers,
   bytes of one full snapshot: what an epoch writes at steady load, when every shard changes).
2. Steady traffic on top: new customers arrive, and the dataflow resumes from the 1M-key store
   with ``hold = 0`` (walk-ins are decided as soon as they are read). Reported: time to resume
   (process start to the first walkthrough the broker received), peak RSS, events/s at that size,
   and the store again (after key churn).

Usage: python -m bench.resume [--keys N] [--steady N]. Needs the local stack (make up).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.common import REPO, report
from bench.e2e import BOOTSTRAP, PARTITIONS, env
from walkthroughs.testing.recovery import init_recovery, latest_shard_snapshots
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import ensure_topics, produce

LIVE_SHARE = 0.9  # the generator gives about 90% of its customers at least one event
INTERVALS = ["-s", "5", "-b", "60"]  # snapshot and backup intervals of k8s/configmap.yaml
CHUNK = 100_000  # customers generated at a time: the sample itself must not blur the figures


def produce_customers(name: str, customers: int, *, prefix: str, seed: int) -> int:
    """Produce traffic for ``customers`` customers (no duplicates, no bad records)."""
    kafka = {"bootstrap.servers": BOOTSTRAP}
    total = 0
    for first in range(0, customers, CHUNK):
        sample = traffic.generate(
            seed=seed + first,
            businesses=2000,
            customers=min(CHUNK, customers - first),
            start_ns=time.time_ns() - 3 * traffic.DAY,
            bad_records=False,
            duplicate_rate=0.0,
            prefix=f"{prefix}{first}-",
        )
        produce(kafka, f"{name}-m", sample.messages)
        produce(kafka, f"{name}-w", sample.walkins)
        total += len(sample.messages) + len(sample.walkins)
    return total


@dataclass
class Run:
    """One dataflow run: wall time, when it started, peak and median RSS (sampled)."""

    seconds: float
    started_ns: int
    peak_rss: int
    median_rss: int


def run(name: str, store: Path, **overrides: str) -> Run:
    """Run the bounded dataflow with recovery, sampling its RSS every 0.2 s."""
    started_ns = time.time_ns()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        command = ["-m", "bytewax.run", "dataflow", "-w", "1", "-r", str(store), *INTERVALS]
        proc = subprocess.Popen(
            [sys.executable, *command],
            cwd=REPO,
            env={**env(name, mongo=False), **overrides},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        samples: list[int] = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            samples.append(rss_of(proc.pid))
            time.sleep(0.2)  # a sampling period, not a wait for behaviour
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"dataflow failed: {err.read().decode()[-2000:]}")
    wall = time.perf_counter() - started
    median = int(statistics.median(samples)) if samples else 0
    return Run(wall, started_ns, usage.ru_maxrss * 1024, median)


def rss_of(pid: int) -> int:
    """Resident set size of a process, in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def store_figures(store: Path) -> dict[str, float]:
    """What the recovery store holds: bytes on disk, shards, customers, one full snapshot."""
    size = sum(p.stat().st_size for p in store.iterdir())
    blobs = [blob for blob in latest_shard_snapshots(store) if blob is not None]
    shards, snapshot = len(blobs), sum(len(blob) for blob in blobs)
    customers = sum(len(pickle.loads(blob)) for blob in blobs)  # a stored snapshot is a Shard
    return {
        "store_mib": round(size / 2**20, 1),
        "store_shards": shards,
        "store_customers": customers,
        "full_snapshot_mib": round(snapshot / 2**20, 1),
    }


def output_offsets(name: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench"})
    topic = f"{name}-out"
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {}
    for p in parts:
        _, ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    consumer.close()
    return ends


def first_output_ms(name: str, since: dict[int, int]) -> int:
    """The broker timestamp (ms) of the earliest output record after the ``since`` offsets."""
    topic = f"{name}-out"
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench"})
    first: int | None = None
    for p, offset in since.items():
        consumer.assign([TopicPartition(topic, p, offset)])
        messages = consumer.consume(1, timeout=10)
        if messages and messages[0].error() is None:
            _, ts = messages[0].timestamp()
            first = ts if first is None else min(first, ts)
    consumer.close()
    if first is None:
        raise SystemExit("the resumed run wrote no walkthrough")
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="live customer keys to build")
    parser.add_argument("--steady", type=int, default=100_000, help="new customers afterwards")
    args = parser.parse_args()
    name = f"bench-resume-{int(time.time())}"
    topics = {f"{name}-{s}": n for s, n in PARTITIONS.items()}
    ensure_topics({"bootstrap.servers": BOOTSTRAP}, topics)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        store = init_recovery(Path(tmp) / "store", 1)
        try:
            t0 = time.perf_counter()
            built = produce_customers(name, round(args.keys / LIVE_SHARE), prefix="k", seed=0)
            print(f"produced {built} records in {time.perf_counter() - t0:.0f}s", flush=True)
            build = run(name, store)
            report(
                "scale_build",
                records=built,
                seconds=round(build.seconds, 1),
                events_per_s=round(built / build.seconds),
                peak_rss_mib=round(build.peak_rss / 2**20),
                median_rss_mib=round(build.median_rss / 2**20),
                **store_figures(store),
            )
            steady = produce_customers(name, args.steady, prefix="s", seed=10**7)
            since = output_offsets(name)
            resumed = run(name, store, WALKTHROUGHS_HOLD="0s")
            resume_s = (first_output_ms(name, since) - resumed.started_ns / 10**6) / 1000
            report(
                "resume",
                steady_records=steady,
                resume_to_first_output_s=round(resume_s, 1),
                seconds=round(resumed.seconds, 1),
                events_per_s_after_resume=round(steady / max(0.001, resumed.seconds - resume_s)),
                peak_rss_mib=round(resumed.peak_rss / 2**20),
                median_rss_mib=round(resumed.median_rss / 2**20),
                **store_figures(store),
            )
        finally:
            AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_topics(list(topics))


if __name__ == "__main__":
    main()
