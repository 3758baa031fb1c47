"""Decision latency in live mode: read -> first walkthrough, p50/p99 from the metrics histogram.

Starts the dataflow live (hold = 0 s, then 30 s; flush interval 5 s), produces the messages,
then walk-ins at a steady rate, and reads ``walkthroughs_decision_latency_seconds`` from the
``/metrics`` endpoint once every walk-in is decided. Target: p99 <= hold + flush + 2 s.

Usage: python -m bench.latency [--walkins N] [--rate PER_S]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import urllib.request

from confluent_kafka import Producer

from bench.common import REPO, report
from bench.e2e import BOOTSTRAP, PARTITIONS, env
from walkthroughs.sinks.kafka import producer_config
from walkthroughs.testing.ports import free_ports
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import ensure_topics, produce
from walkthroughs.wire.codec import encode_message, encode_walkin
from walkthroughs.wire.schema import MessageEvent, WalkInEvent

METRIC = "walkthroughs_decision_latency_seconds"


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(METRIC):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def quantile(q: float, values: dict[str, float]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    buckets = sorted(
        (
            float("inf")
            if k.split('le="')[1].rstrip('"}') == "+Inf"
            else float(k.split('le="')[1].rstrip('"}')),
            v,
        )
        for k, v in values.items()
        if k.startswith(f"{METRIC}_bucket")
    )
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def run(hold_s: int, walkins: int, rate: float) -> dict[str, float]:
    name = f"lat-{int(time.time())}-{hold_s}"
    kafka = {"bootstrap.servers": BOOTSTRAP}
    ensure_topics(kafka, {f"{name}-{s}": n for s, n in PARTITIONS.items()})
    (port,) = free_ports(1)
    environment = {
        **env(name, mongo=True),
        "WALKTHROUGHS_STOP_AT_END": "0",
        "WALKTHROUGHS_HOLD": f"{hold_s}s",
        "BYTEWAX_DATAFLOW_API_ENABLED": "1",
        "BYTEWAX_DATAFLOW_API_PORT": str(port),
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": "/tmp",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        now = time.time_ns()
        messages = [
            MessageEvent(f"m{i}", "b", f"c{i}", now - traffic.HOUR, 1, "") for i in range(walkins)
        ]
        produce(kafka, f"{name}-m", [(m.message_id.encode(), encode_message(m)) for m in messages])
        producer = Producer(producer_config(kafka, delivery_timeout_s=30))
        for i in range(walkins):  # a steady trickle, as stores detect customers
            w = WalkInEvent(f"w{i}", "b", f"c{i}", "loc", time.time_ns(), "")
            producer.produce(f"{name}-w", encode_walkin(w), b"loc")
            producer.poll(0)
            time.sleep(1 / rate)  # the pace of the trickle, not a wait for behaviour
        producer.flush(30)
        deadline = time.monotonic() + hold_s + 120
        while time.monotonic() < deadline:
            try:
                values = scrape(port)
            except OSError:
                values = {}
            if values.get(f"{METRIC}_count", 0) >= walkins:
                return {
                    "p50_s": round(quantile(0.5, values), 2),
                    "p99_s": round(quantile(0.99, values), 2),
                    "decided": int(values[f"{METRIC}_count"]),
                }
            time.sleep(1)
        raise SystemExit(f"not every walk-in was decided within hold + 120 s (hold {hold_s}s)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        from confluent_kafka.admin import AdminClient

        AdminClient(dict(kafka)).delete_topics([f"{name}-{s}" for s in PARTITIONS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walkins", type=int, default=600)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    for hold_s in (0, 30):
        figures = run(hold_s, args.walkins, args.rate)
        report(
            "latency",
            hold_s=hold_s,
            flush_interval_s=5,
            walkins=args.walkins,
            target_p99_s=hold_s + 5 + 2,
            **figures,
        )


if __name__ == "__main__":
    main()
