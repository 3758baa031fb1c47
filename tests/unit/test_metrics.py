"""The decision-latency histogram takes counted values and scrapes as a Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from walkthroughs.runtime.metrics import CountedHistogram

BUCKETS = (0.1, 0.5, 1, 2, 30, 3600)
SEEN = [(0.05, 3), (0.1, 1), (0.7, 2), (5000.0, 1), (2.0, 4), (31.5, 7)]


def _scrape(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith("lat_seconds") and not line.startswith("lat_seconds_created")
    ]


def test_counted_values_scrape_as_one_observation_each_would() -> None:
    counted_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    counted = CountedHistogram("lat_seconds", "latency", BUCKETS, registry=counted_registry)
    reference = Histogram("lat_seconds", "latency", buckets=BUCKETS, registry=reference_registry)
    for value, times in SEEN:
        counted.observe(value, times)
        for _ in range(times):
            reference.observe(value)
    lines = _scrape(counted_registry)
    assert lines == _scrape(reference_registry)
    assert 'lat_seconds_bucket{le="0.1"} 4.0' in lines  # a value on a bound is counted under it
    assert "lat_seconds_count 18.0" in lines
