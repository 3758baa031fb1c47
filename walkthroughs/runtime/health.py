"""Health that tells the truth when a worker is stuck: progress, lag and readiness.

A Bytewax worker runs its sources, its steps and its sinks on one thread. While a sink call
waits on a stalled server, nothing else of that worker runs, and (through epoch backpressure)
soon no source of the dataflow reads. Anything measured *by* the worker then freezes at its
last value: consumer lag measured in the source read zero while reading was frozen. So:

* **Progress** is a heartbeat each source partition gives at every poll (``Progress.beat``);
  ``walkthroughs_stalled_seconds`` is, at scrape time, the longest any live partition of the
  process has gone without one. It grows while the dataflow makes no progress, whatever the
  reason (a stalled sink, a hot key, a stuck snapshot).
* **Lag** is measured by a thread of its own (``LagMonitor``): every few seconds it asks the
  brokers for the high watermarks of the partitions this process reads and subtracts the next
  offset each partition will read. It keeps growing while reading is frozen.
* **Readiness** (``serve``): ``GET /ready`` answers 503 while the process has been stalled for
  longer than the limit, or once a stop was requested; ``GET /live`` answers 200 as long as the
  process can answer at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from walkthroughs.runtime import metrics, stopping
from walkthroughs.runtime.kafka_logs import admin_client

log = logging.getLogger(__name__)
PartitionKey = tuple[str, int]  # (topic, partition)
LAG_INTERVAL_S = 5.0


class Progress:
    """When each live source partition of the process last polled (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[PartitionKey, float] = {}

    def beat(self, key: PartitionKey) -> None:
        """The partition's worker came round to it: the dataflow is moving."""
        self._beats[key] = self._clock()

    def forget(self, key: PartitionKey) -> None:
        """The partition ended (bounded mode) or closed: it no longer has to beat."""
        self._beats.pop(key, None)

    def stalled_s(self) -> float:
        """The longest a live partition has gone without a beat (0 with none)."""
        beats = list(self._beats.values())  # one C call: safe against workers adding keys
        return max((self._clock() - t for t in beats), default=0.0)


PROGRESS = Progress()
metrics.STALLED.set_function(PROGRESS.stalled_s)


class LagMonitor:
    """Measures the lag of the process's partitions from a thread of its own."""

    def __init__(self, kafka_config: Mapping[str, str], interval_s: float = LAG_INTERVAL_S) -> None:
        self._config = dict(kafka_config)
        self._admin = admin_client(self._config)
        self._interval_s = interval_s
        self._next: dict[PartitionKey, Callable[[], int]] = {}
        self.highs: dict[PartitionKey, int] = {}  # high watermarks at the last measure
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-monitor", daemon=True)
        self._thread.start()

    def track(self, key: PartitionKey, next_offset: Callable[[], int]) -> None:
        """Measure a partition: ``next_offset()`` is the next offset its worker will read."""
        self._next[key] = next_offset
        self._wake.set()  # a first figure at once, not an interval later

    def untrack(self, key: PartitionKey) -> None:
        """Stop measuring a partition."""
        self._next.pop(key, None)
        self.highs.pop(key, None)

    def measure(self) -> None:
        """Ask the brokers for the high watermarks and publish each partition's lag once."""
        tracked = dict(self._next)
        if not tracked:
            return
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(t, p): latest for t, p in tracked}
        futures = self._admin.list_offsets(request, request_timeout=self._interval_s)
        for tp, future in futures.items():
            key = (tp.topic, tp.partition)
            if key not in tracked:
                continue
            high = future.result().offset
            self.highs[key] = high
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, high - tracked[key]())
            )

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            self._admin.poll(0)  # serves the client's log events (kafka_logs)
            try:
                self.measure()
            except KafkaException as exc:  # brokers away: keep the last figures, try again
                log.warning("lag_unmeasured", extra={"fields": {"error": str(exc.args[0])}})
                # With a fresh client: librdkafka 2.16's admin client kept asking a restarted
                # broker with the leader epoch it knew before (FENCED_LEADER_EPOCH, for good).
                self._admin = admin_client(self._config)


_monitor: LagMonitor | None = None
_monitor_lock = threading.Lock()


def lag_monitor(kafka_config: Mapping[str, str]) -> LagMonitor:
    """The process's lag monitor, started on first use (by the first source partition)."""
    global _monitor  # noqa: PLW0603  # one monitor thread per process
    with _monitor_lock:
        if _monitor is None:
            _monitor = LagMonitor(kafka_config)
        return _monitor


def known_high(key: PartitionKey) -> int | None:
    """A partition's high watermark at the lag monitor's last measure (None: none yet)."""
    return None if _monitor is None else _monitor.highs.get(key)


def leave(key: PartitionKey) -> None:
    """A source partition ended or closed: no more beats, no more lag from it."""
    PROGRESS.forget(key)
    if _monitor is not None:
        _monitor.untrack(key)


def readiness(stall_limit_s: float) -> tuple[bool, dict[str, object]]:
    """Whether the process is ready, and why (the body of ``/ready``)."""
    stalled = PROGRESS.stalled_s()
    stopping_now = stopping.requested()
    ready = not stopping_now and stalled < stall_limit_s
    return ready, {
        "ready": ready,
        "stalled_seconds": round(stalled, 1),
        "stall_limit_seconds": stall_limit_s,
        "stopping": stopping_now,
    }


def serve(port: int, stall_limit_s: float) -> ThreadingHTTPServer:
    """Serve ``/ready`` and ``/live`` on ``port`` from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body: dict[str, object]
            if self.path == "/live":
                status, body = 200, {"live": True}
            elif self.path == "/ready":
                ready, body = readiness(stall_limit_s)
                status = 200 if ready else 503
            else:
                status, body = 404, {"error": "not found: /ready or /live"}
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds: not worth a log line each

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # a pod's probe port
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
