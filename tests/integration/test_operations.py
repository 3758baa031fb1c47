"""Stopping, outages and secrets, on the real stack."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from types import ModuleType

from tests.integration.dataflow_harness import (
    START_NS,
    WINDOW_NS,
    Deployment,
    assert_exact,
    ended,
    recovery_args,
    scrape,
    wait_for,
)
from tests.reference import expected_walkthroughs
from walkthroughs.testing.ports import free_ports
from walkthroughs.testing.recovery import init_recovery
from walkthroughs.tools import traffic


def test_sigterm_stops_promptly_and_a_restart_completes(
    deployment: Deployment, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=3, businesses=4, customers=800, start_ns=START_NS)
    deployment.feed(sample)
    proc = deployment.start(
        *recovery_args(recovery, workers=2), WALKTHROUGHS_STOP_AT_END="0", WALKTHROUGHS_HOLD="0"
    )
    wait_for(lambda: len(deployment.output()) > 10)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - started < 30, out
    assert proc.returncode != -signal.SIGTERM, "SIGTERM must be handled, not fatal"

    final = deployment.run(*recovery_args(recovery, workers=1))
    assert final.returncode == 0, final.stderr
    assert_exact(deployment, sample)


def test_kafka_outage_longer_than_the_delivery_timeout_stops_loudly_then_restart_completes(
    deployment: Deployment, stack: ModuleType, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=12, businesses=4, customers=600, start_ns=START_NS)
    log = tmp_path / "live.log"
    proc = deployment.start(
        *recovery_args(recovery, workers=2),
        log=log,
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_HOLD="3s",
        WALKTHROUGHS_KAFKA_MESSAGE_TIMEOUT_MS="3000",
    )
    try:
        deployment.feed(sample)
        wait_for(lambda: len(deployment.dead_letters()) >= sample.bad)  # inputs are being read
        stack.stop(stack.KAFKA)  # walk-ins fall due meanwhile
    finally:
        text = ended(proc, log)
    assert proc.returncode != 0
    assert '"event":"kafka_sink_failed"' in text
    assert "stopping so recovery replays" in text  # the error itself, not an abort
    stack.up()
    final = deployment.run(*recovery_args(recovery, workers=2))
    assert final.returncode == 0, final.stderr
    assert_exact(deployment, sample)


def test_short_kafka_outage_is_ridden_out(
    deployment: Deployment, stack: ModuleType, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=13, businesses=4, customers=600, start_ns=START_NS)
    first, second = (
        sample.messages[: len(sample.messages) // 2],
        sample.messages[len(sample.messages) // 2 :],
    )
    log = tmp_path / "live.log"
    proc = deployment.start(
        *recovery_args(recovery, workers=2),
        log=log,
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_HOLD="0",
    )
    try:
        deployment.produce("w", sample.walkins)
        deployment.produce("m", first)
        wait_for(lambda: len(deployment.output()) > 10)
        stack.stop(stack.KAFKA)
        stack.up()  # back well within the 30 s delivery timeout
        deployment.produce("m", second)
        assert proc.poll() is None, log.read_text()[-3000:]
        expected_n = len(expected_walkthroughs(sample.events, WINDOW_NS))
        try:
            wait_for(lambda: len(deployment.output()) == expected_n)
        except AssertionError as exc:
            got = len(deployment.output())
            msg = f"{got} of {expected_n} walkthroughs; alive: {proc.poll() is None}; log tail:\n"
            raise AssertionError(msg + log.read_text()[-4000:]) from exc
        assert proc.poll() is None, "the dataflow survived the outage by itself"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    final = deployment.run(*recovery_args(recovery, workers=2))
    assert final.returncode == 0, final.stderr
    assert_exact(deployment, sample)


def _start_then_stop_mongo(
    deployment: Deployment,
    stack: ModuleType,
    recovery: Path,
    log: Path,
    sample: traffic.Traffic,
    **env: str,
) -> subprocess.Popen[str]:
    """Start the live dataflow with MongoDB up (start-up checks it), then stop MongoDB once the
    inputs are being read, before the first walk-in is decided (hold 5 s)."""
    proc = deployment.start(
        *recovery_args(recovery, workers=2),
        log=log,
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_HOLD="5s",
        **env,
    )
    deployment.feed(sample)
    wait_for(lambda: len(deployment.dead_letters()) >= sample.bad)  # inputs are being read
    stack.stop(stack.FERRETDB)
    return proc


def test_mongo_outage_is_retried_then_fails_loudly_past_the_limit(
    deployment: Deployment, stack: ModuleType, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=14, businesses=4, customers=600, start_ns=START_NS)
    log = tmp_path / "live.log"
    proc = _start_then_stop_mongo(
        deployment, stack, recovery, log, sample, WALKTHROUGHS_MONGO_RETRY_LIMIT="3s"
    )
    text = ended(proc, log)
    assert proc.returncode != 0
    assert "mongo_retry" in text
    assert "MongoDB unavailable for 3s" in text
    stack.up()
    final = deployment.run(*recovery_args(recovery, workers=2))
    assert final.returncode == 0, final.stderr
    assert_exact(deployment, sample)


def test_mongo_outage_within_the_limit_is_ridden_out(
    deployment: Deployment, stack: ModuleType, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=15, businesses=4, customers=600, start_ns=START_NS)
    log = tmp_path / "live.log"
    expected_n = len(expected_walkthroughs(sample.events, WINDOW_NS))
    proc = _start_then_stop_mongo(deployment, stack, recovery, log, sample)
    try:
        wait_for(lambda: "mongo_retry" in log.read_text())  # it noticed, and it is retrying
        stack.up()
        wait_for(lambda: len(deployment.mongo()[0]) == expected_n, timeout_s=180)
        assert proc.poll() is None, "the dataflow rode the outage out by itself"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert_exact(deployment, sample)


def test_metrics_endpoint_reports_the_pipeline(deployment: Deployment, tmp_path: Path) -> None:
    sample = traffic.generate(seed=18, businesses=3, customers=300, start_ns=START_NS)
    (port,) = free_ports(1)
    proc = deployment.start(
        "-w",
        "2",
        log=tmp_path / "live.log",
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_HOLD="0",
        BYTEWAX_DATAFLOW_API_ENABLED="1",
        BYTEWAX_DATAFLOW_API_PORT=str(port),
        BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
    )
    try:
        deployment.feed(sample)
        total = len(sample.messages) + len(sample.walkins)

        def read_everything() -> dict[str, float] | None:
            m = scrape(port)
            read = sum(v for k, v in m.items() if k.startswith("walkthroughs_records_read_total"))
            emitted = m.get('walkthroughs_emitted_total{kind="first"}', 0)
            # The MongoDB sink writes after Kafka: wait for its first batch as well.
            written = m.get('walkthroughs_sink_batch_size_count{sink="mongo"}', 0)
            # Lag comes from librdkafka's statistics callback, on its own interval: wait for its
            # first report too, or a fast run scrapes before it (a flake seen in CI).
            lag = any(k.startswith("walkthroughs_consumer_lag{") for k in m)
            ready = read == total and emitted > 0 and written > 0 and lag
            return m if ready else None

        m = wait_for(read_everything)
        dead = sum(v for k, v in m.items() if k.startswith("walkthroughs_dead_letters_total"))
        assert dead == sample.bad
        assert m['walkthroughs_dead_letters_total{reason="invalid timezone"}'] == 1
        assert m["walkthroughs_decision_latency_seconds_count"] > 0
        assert any(k.startswith("walkthroughs_consumer_lag{") for k in m)
        assert wait_for(lambda: scrape(port).get("walkthroughs_state_customers", 0) > 0)
        assert "walkthroughs_late_events_total" in m
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
