"""Prometheus metrics of the service, served by Bytewax's API server on ``/metrics``.

Set ``BYTEWAX_DATAFLOW_API_ENABLED=1`` (port ``BYTEWAX_DATAFLOW_API_PORT``, default 3030): the
endpoint serves Bytewax's own metrics followed by everything registered here in
``prometheus_client``'s default registry. All metrics are per process; sum over pods.

Metric names are a closed set (``MetricName``); ``docs/grafana-dashboard.json`` uses them.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import Literal

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

MetricName = Literal[
    "walkthroughs_records_read_total",
    "walkthroughs_dead_letters_total",
    "walkthroughs_late_events_total",
    "walkthroughs_emitted_total",
    "walkthroughs_decision_latency_seconds",
    "walkthroughs_state_customers",
    "walkthroughs_state_messages",
    "walkthroughs_state_walkins",
    "walkthroughs_erasures_total",
    "walkthroughs_erased_records_total",
    "walkthroughs_erased_events_dropped_total",
    "walkthroughs_sink_batch_size",
    "walkthroughs_sink_retries_total",
    "walkthroughs_consumer_lag",
    "walkthroughs_stalled_seconds",
]

RECORDS_READ = Counter("walkthroughs_records_read", "Input records read, per topic.", ["topic"])
DEAD_LETTERS = Counter(
    "walkthroughs_dead_letters", "Records sent to the dead-letter topic, per reason.", ["reason"]
)
LATE_EVENTS = Counter(
    "walkthroughs_late_events",
    "Events that arrived after state they needed was let go (also dead-lettered as late).",
)
EMITTED = Counter(
    "walkthroughs_emitted",
    "Walkthroughs emitted: kind=first for a walk-in's first walkthrough, revision after that.",
    ["kind"],
)
# The children made once: ``labels()`` takes a lock and looks them up at every call.
EMITTED_FIRST = EMITTED.labels("first")
EMITTED_REVISION = EMITTED.labels("revision")


_go_float: Callable[[float], str] = floatToGoString  # "0.1", "1.0", "1e+06" (untyped upstream)


class CountedHistogram:
    """A histogram that takes a value with how many times it was seen.

    ``prometheus_client.Histogram`` takes one value per call, with a Python scan of its buckets
    and two locked increments: 1-2 us, once per walkthrough decided. The first decisions of a
    batch share their few read times, so the flow observes each latency once with its count.
    Exposed like a ``Histogram`` (``_bucket``, ``_count``, ``_sum``), without ``_created``.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        """Count ``value`` ``count`` times."""
        at = bisect_left(self._bounds, value)  # the first bucket whose bound is >= value
        with self._lock:
            self._counts[at] += count
            self._sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The cumulative buckets, as a Prometheus scrape reads them."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = list(accumulate(counts))
        bounds = [_go_float(b) for b in self._bounds] + ["+Inf"]  # as Histogram writes them
        yield HistogramMetricFamily(
            self._name,
            self._documentation,
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=total,
        )


DECISION_LATENCY = CountedHistogram(
    "walkthroughs_decision_latency_seconds",
    "From reading a walk-in to emitting its first walkthrough (processing time).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 35, 40, 60, 120, 300, 900, 3600),
)
STATE_CUSTOMERS = Gauge(
    "walkthroughs_state_customers", "(business, customer) keys held in state, at last snapshot."
)
STATE_MESSAGES = Gauge("walkthroughs_state_messages", "Messages retained in state.")
STATE_WALKINS = Gauge("walkthroughs_state_walkins", "Walk-ins retained in state.")
ERASURES = Counter(
    "walkthroughs_erasures",
    "Erasure requests carried out: stage=state when the customer was dropped from state, "
    "stage=outputs when its MongoDB documents were deleted and its tombstones written.",
    ["stage"],
)
ERASED_RECORDS = Counter(
    "walkthroughs_erased_records",
    "What erasures removed: kind=messages, walkins, ghosts (state), documents (MongoDB), "
    "tombstones (records written to the output topic).",
    ["kind"],
)
ERASED_EVENTS_DROPPED = Counter(
    "walkthroughs_erased_events_dropped",
    "Events of an erased customer read within the erasure horizon: dropped, not dead-lettered.",
)
SINK_BATCH_SIZE = Histogram(
    "walkthroughs_sink_batch_size",
    "Items per write batch, per sink.",
    ["sink"],
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000),
)
SINK_RETRIES = Counter(
    "walkthroughs_sink_retries", "Write attempts retried after a transient error.", ["sink"]
)
CONSUMER_LAG = Gauge(
    "walkthroughs_consumer_lag",
    "Records between the next one to read and the partition's high watermark (measured by a "
    "thread of its own every 5 s, so it grows while reading is frozen).",
    ["topic", "partition"],
)
STALLED = Gauge(
    "walkthroughs_stalled_seconds",
    "The longest any source partition of this process has gone without its worker coming round "
    "to it: grows while the dataflow makes no progress (a stalled sink, a hot key).",
)
