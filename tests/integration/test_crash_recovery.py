"""Crashes anywhere, rescaling, replays: with recovery the final results stay exact.

Every test produces traffic in parts while the dataflow runs and dies (``kill -9`` at random
moments, or at named failpoints in the middle of a MongoDB batch and of a Kafka flush), resumes
from the same recovery store, and finishes in bounded mode. The output topic (latest per key),
both MongoDB collections and the DLQ must then equal the rule applied to the input.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dataflow_harness import (
    Deployment,
    chunks,
    expected_counts,
    init_recovery,
    recovery_args,
)
from tests.reference import expected_walkthroughs
from walkthroughs import traffic
from walkthroughs.codec import to_mongo_doc

WINDOW_NS = 7 * traffic.DAY
START_NS = time.time_ns() - 3 * traffic.DAY


@pytest.fixture
def deployment(kafka_bootstrap: str, unique_name: str) -> Iterator[Deployment]:
    from tests.conftest import MONGO_URI

    d = Deployment(unique_name, kafka_bootstrap, MONGO_URI)
    d.create()
    yield d
    d.delete()


def assert_exact(deployment: Deployment, sample: traffic.Traffic) -> dict[str, object]:
    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert deployment.output() == expected
    docs, counts = deployment.mongo()
    assert docs == [to_mongo_doc(w) for _, w in sorted(expected.items())]
    assert counts == expected_counts(expected)
    dead = deployment.dead_letters()
    # At-least-once: a replayed epoch may report a bad record twice, never zero times.
    positions = {
        (r.headers["source_topic"], r.headers["source_partition"], r.headers["source_offset"])
        for r in dead
    }
    assert len(positions) == sample.bad
    assert all(r.headers["error"].split(b" ")[0] != b"late" for r in dead)
    return {"walkthroughs": len(expected), "dead_letters": len(dead)}


def test_kill_9_anywhere_then_resume_is_exact(deployment: Deployment, tmp_path: Path) -> None:
    recovery = init_recovery(tmp_path / "recovery", 4)
    sample = traffic.generate(seed=21, businesses=6, customers=1500, start_ns=START_NS)
    parts = list(zip(chunks(sample.messages, 5), chunks(sample.walkins, 5), strict=True))
    rng = random.Random(4)
    crashes = []
    for i, (messages, walkins) in enumerate(parts[:-1]):
        deployment.produce("w", walkins)
        deployment.produce("m", messages)
        if i == 1:  # in the middle of a MongoDB batch: walkthroughs written, counts not yet
            run = deployment.run(
                *recovery_args(recovery, workers=2), WT_FAILPOINT="mongo.between_writes:1"
            )
            crashes.append(("mongo.between_writes", run.returncode))
        elif i == 2:  # in the middle of a Kafka flush: records handed over, not acknowledged
            run = deployment.run(
                *recovery_args(recovery, workers=2), WT_FAILPOINT="kafka.before_confirm:2"
            )
            crashes.append(("kafka.before_confirm", run.returncode))
        else:  # at a random moment of a live run
            proc = deployment.start(
                *recovery_args(recovery, workers=2), WALKTHROUGHS_STOP_AT_END="0"
            )
            time.sleep(rng.uniform(1.0, 4.0))  # the kill moment is random, nothing waits on it
            proc.send_signal(signal.SIGKILL)
            crashes.append(("random", proc.wait(timeout=30)))
    assert all(rc == -signal.SIGKILL for _, rc in crashes), crashes

    deployment.produce("w", parts[-1][1])
    deployment.produce("m", parts[-1][0])
    final = deployment.run(*recovery_args(recovery, workers=2))
    assert final.returncode == 0, final.stdout + final.stderr
    figures = assert_exact(deployment, sample)
    print(f"crash points={crashes} events={len(sample.events)} {figures}")


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_rescale_1_then_3_then_2_workers_then_2_processes(
    deployment: Deployment, tmp_path: Path
) -> None:
    """One recovery store (6 partitions: more than any worker count used) across 4 scales."""
    recovery = init_recovery(tmp_path / "recovery", 6)
    sample = traffic.generate(seed=33, businesses=5, customers=1200, start_ns=START_NS)
    parts = list(zip(chunks(sample.messages, 4), chunks(sample.walkins, 4), strict=True))
    for workers, (messages, walkins) in zip([1, 3, 2], parts[:3], strict=True):
        deployment.produce("m", messages)
        deployment.produce("w", walkins)
        run = deployment.run(*recovery_args(recovery, workers=workers))
        assert run.returncode == 0, run.stdout + run.stderr

    deployment.produce("m", parts[3][0])
    deployment.produce("w", parts[3][1])
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    base = ["-r", str(recovery), "-s", "1", "-b", "0", "-a", addresses]
    procs = [deployment.start(*base, "-i", str(i)) for i in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    assert_exact(deployment, sample)


def test_replay_through_the_backfill_topics_changes_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The same events again, via the backfill topics: with the old state, then with none."""
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=8, businesses=4, customers=600, start_ns=START_NS)
    deployment.produce("m", sample.messages)
    deployment.produce("w", sample.walkins)
    first = deployment.run(*recovery_args(recovery, workers=2))
    assert first.returncode == 0, first.stderr
    before = deployment.mongo()
    assert_exact(deployment, sample)

    deployment.produce("mb", sample.messages)  # a backfill of the same events
    deployment.produce("wb", sample.walkins)
    with_state = deployment.run(*recovery_args(recovery, workers=1))
    assert with_state.returncode == 0, with_state.stderr
    assert deployment.mongo() == before
    assert deployment.output() == expected_walkthroughs(sample.events, WINDOW_NS)

    fresh = deployment.run("-w", "2")  # no recovery: everything read again from scratch
    assert fresh.returncode == 0, fresh.stderr
    assert deployment.mongo() == before
    assert deployment.output() == expected_walkthroughs(sample.events, WINDOW_NS)
