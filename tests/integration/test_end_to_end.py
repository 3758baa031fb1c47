"""The real dataflow on the real stack, compared exactly with the rule applied by brute force.

Inputs are produced with their own keys (message id, location) to topics of different partition
counts, shuffled across the live and backfill topics, with duplicates and one bad record of every
kind. The dataflow runs in bounded mode as `python -m bytewax.run dataflow` (1 and 2 workers).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.integration.dataflow_harness import (
    START_NS,
    WINDOW_NS,
    Deployment,
    expected_counts,
    wait_for,
)
from tests.reference import expected_walkthroughs
from walkthroughs.testing.recovery import init_recovery
from walkthroughs.tools import traffic
from walkthroughs.wire.codec import to_mongo_doc

Keyed = tuple[bytes, bytes | None]  # a record as produced: key, value (None: a tombstone)


def split_live_backfill(records: list[Keyed], seed: int) -> tuple[list[Keyed], list[Keyed]]:
    rng = random.Random(seed)
    shuffled = records[:]
    rng.shuffle(shuffled)
    live = [r for r in shuffled if rng.random() < 0.6]
    backfill = [r for r in shuffled if r not in live or rng.random() < 0.05]  # some in both
    return live, backfill


@pytest.mark.parametrize("workers", [1, 2])
def test_bounded_run_equals_the_rule(deployment: Deployment, workers: int) -> None:
    sample = traffic.generate(seed=11, businesses=6, customers=400, start_ns=START_NS)
    bad_at = set()
    for suffix_live, suffix_backfill, records in (
        ("m", "mb", sample.messages),
        ("w", "wb", sample.walkins),
    ):
        live, backfill = split_live_backfill(records, seed=workers)
        for suffix, part in ((suffix_live, live), (suffix_backfill, backfill)):
            landed = deployment.produce(suffix, part)
            bad_at |= {pos for pos, (key, _) in zip(landed, part, strict=True) if key == b"bad"}

    started = time.monotonic()
    proc = deployment.run("-w", str(workers))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr

    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert len(expected) > 50, "the sample must attribute a fair share of walk-ins"
    assert deployment.output() == expected

    docs, counts = deployment.mongo()
    assert docs == [to_mongo_doc(w) for _, w in sorted(expected.items())]
    assert counts == expected_counts(expected)

    dead = deployment.dead_letters()
    assert {
        (
            r.headers["source_topic"].decode(),
            int(r.headers["source_partition"]),
            int(r.headers["source_offset"]),
        )
        for r in dead
    } == bad_at
    assert len(dead) == len(bad_at)  # each bad record exactly once (a copy in both topics: twice)
    reasons = sorted(r.headers["error"].decode().split(" ")[0] for r in dead)
    assert "late" not in reasons
    for r in dead:
        assert r.key == b"bad"

    # A replay with fresh state (no recovery: everything is read again) changes no result.
    again = deployment.run("-w", str(3 - workers))
    assert again.returncode == 0, again.stdout + again.stderr
    assert deployment.output() == expected
    assert deployment.mongo() == (docs, counts)
    print(
        f"workers={workers} events={len(sample.events)} records="
        f"{len(sample.messages) + len(sample.walkins)} walkthroughs={len(expected)} "
        f"dead={len(dead)} run_s={elapsed:.1f}"
    )


def test_walkins_first_then_messages_in_a_resumed_run(
    deployment: Deployment, tmp_path: Path
) -> None:
    """All walk-ins are read and decided (none attributed) before any message exists; a second
    bounded run resumes from recovery, reads only the messages, and revises every walk-in."""
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=5, businesses=4, customers=200, start_ns=START_NS)
    deployment.produce("w", sample.walkins)

    first = deployment.run("-w", "2", "-r", str(recovery), "-s", "1", "-b", "0")
    assert first.returncode == 0, first.stdout + first.stderr
    assert deployment.output() == {}
    assert deployment.mongo() == ([], [])

    deployment.produce("mb", sample.messages)  # the backfill topic, for a change
    second = deployment.run("-w", "1", "-r", str(recovery), "-s", "1", "-b", "0")
    assert second.returncode == 0, second.stdout + second.stderr

    expected = expected_walkthroughs(sample.events, WINDOW_NS)
    assert len(expected) > 20
    assert deployment.output() == expected
    docs, counts = deployment.mongo()
    assert docs == [to_mongo_doc(w) for _, w in sorted(expected.items())]
    assert counts == expected_counts(expected)
    # The walk-ins were not read again: only each run's own bad records are in the DLQ.
    assert len(deployment.dead_letters()) == sample.bad


def test_live_run_emits_early_then_revises(deployment: Deployment, tmp_path: Path) -> None:
    from walkthroughs.wire.codec import encode_message, encode_walkin, local_date
    from walkthroughs.wire.schema import Channel, MessageEvent, WalkInEvent

    t = time.time_ns() - traffic.HOUR
    walkin = WalkInEvent("w-live", "b", "c", "loc", t, local_date(t, ""))
    first = MessageEvent("m-early", "b", "c", t - 2 * traffic.HOUR, Channel.EMAIL, "")
    later = MessageEvent("m-later", "b", "c", t - traffic.HOUR, Channel.SMS, "camp")
    proc = deployment.start(
        log=tmp_path / "live.log",
        WALKTHROUGHS_STOP_AT_END="0",
        WALKTHROUGHS_HOLD="0",
        WALKTHROUGHS_FLUSH_INTERVAL="100ms",
    )
    try:
        deployment.produce("m", [(b"m-early", encode_message(first))])
        deployment.produce("w", [(b"loc", encode_walkin(walkin))])
        early = wait_for(lambda: deployment.output().get("w-live"))
        assert early.message_id == "m-early"

        deployment.produce("m", [(b"m-later", encode_message(later))])
        revised = wait_for(
            lambda: (
                w
                if (w := deployment.output().get("w-live")) and w.message_id == "m-later"
                else None
            )
        )
        assert revised.channel == Channel.SMS
        expected_counts = [
            {"business_id": "b", "date": walkin.local_date, "count": 1, "by_channel": {"SMS": 1}}
        ]
        docs, _ = wait_for(lambda: m if (m := deployment.mongo())[1] == expected_counts else None)
        assert [(d["_id"], d["message_id"], d["channel"]) for d in docs] == [
            ("w-live", "m-later", "SMS")
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
