"""``dlq inspect`` and ``dlq redrive`` on the real stack: walk-ins whose devices send a Windows
zone name are dead-lettered, a setting fixes them, the redrive attributes them exactly; a redrive
repeated changes nothing; a record that still fails stops at the loop guard; a dry run writes
nothing."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from tests.integration.dataflow_harness import (
    START_NS,
    WINDOW_NS,
    Deployment,
    expected_counts,
    recovery_args,
)
from tests.reference import expected_walkthroughs
from walkthroughs.testing.recovery import init_recovery
from walkthroughs.tools import traffic
from walkthroughs.tools.dead_letters import Letter
from walkthroughs.wire.codec import encode_walkin, local_date, to_mongo_doc
from walkthroughs.wire.dead_letter_headers import REDRIVE_COUNT
from walkthroughs.wire.schema import MessageEvent, WalkInEvent

WINDOWS_ZONE = "Pacific Standard Time"
ALIASES = {"WALKTHROUGHS_TIMEZONE_ALIASES": f"{WINDOWS_ZONE}=America/Los_Angeles"}


def windows_zone_walkins(sample: traffic.Traffic, n: int) -> list[WalkInEvent]:
    """Walk-ins an hour after ``n`` customers' messages, from devices naming a Windows zone."""
    messages = [e for e in sample.events if isinstance(e, MessageEvent)][:n]
    return [
        WalkInEvent(
            f"pst-walkin-{i}",
            m.business_id,
            m.customer_id,
            "loc-pst",
            m.sent_at_ns + 3600 * 10**9,
            local_date(m.sent_at_ns + 3600 * 10**9, "America/Los_Angeles"),
        )
        for i, m in enumerate(messages)
    ]


def letters(deployment: Deployment) -> list[Letter]:
    return [
        Letter(r.partition, r.offset, r.timestamp_ms, r.key, r.value, r.headers)
        for r in deployment.dead_letters()
    ]


def end_offsets(deployment: Deployment, suffix: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": deployment.bootstrap, "group.id": "probe"})
    topic = deployment.topic(suffix)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(meta.partitions)
        ]
    finally:
        consumer.close()


def assert_outputs_are_the_rule(deployment: Deployment, events: list[object]) -> None:
    expected = expected_walkthroughs(events, WINDOW_NS)
    assert deployment.output() == expected
    docs, counts = deployment.mongo()
    assert docs == [to_mongo_doc(w) for _, w in sorted(expected.items())]
    assert counts == expected_counts(expected)


def test_fixed_by_a_setting_then_redriven_is_exact_and_repeating_changes_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 2)
    sample = traffic.generate(seed=5, businesses=3, customers=300, start_ns=START_NS)
    pst = windows_zone_walkins(sample, 6)
    deployment.feed(sample)
    landed = deployment.produce(
        "w", [(w.location_id.encode(), encode_walkin(w, timezone=WINDOWS_ZONE)) for w in pst]
    )
    fixable = {f"{t}#{p}@{o}" for t, p, o in landed}
    first = deployment.run(*recovery_args(recovery, workers=2))
    assert first.returncode == 0, first.stderr[-3000:]
    assert_outputs_are_the_rule(deployment, list(sample.events))  # the six are not in it
    zoned = {g.lineage for g in letters(deployment) if g.reason == "invalid timezone"}
    hopeless = zoned - fixable  # the sample's own bad zone: no alias fixes it
    assert fixable < zoned
    assert hopeless

    inspected = deployment.cli("dlq", "inspect", "--reason", "invalid timezone", "--limit", "2")
    assert inspected.returncode == 0, inspected.stderr
    assert "invalid timezone" in inspected.stdout
    assert f'timezone: "{WINDOWS_ZONE}"' in inspected.stdout  # decoded, though invalid
    everything = deployment.cli("dlq", "inspect")
    assert everything.returncode == 0, everything.stderr
    for reason in {g.reason for g in letters(deployment)}:
        assert reason in everything.stdout

    before = end_offsets(deployment, "w")
    dry = deployment.cli("dlq", "redrive", "--reason", "invalid timezone", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would redrive {len(zoned)} record(s)" in dry.stdout
    assert end_offsets(deployment, "w") == before  # wrote nothing

    sent = deployment.cli("dlq", "redrive", "--reason", "invalid timezone")
    assert sent.returncode == 0, sent.stderr
    assert f"redriven: {len(zoned)} record(s)" in sent.stdout
    assert sum(end_offsets(deployment, "w")) == sum(before) + len(zoned)
    fixed = deployment.run(*recovery_args(recovery, workers=2), env=ALIASES)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert_outputs_are_the_rule(deployment, [*sample.events, *pst])
    failed_again = {g.lineage for g in letters(deployment) if g.redrive_count}
    assert failed_again == hopeless  # the fixed ones passed

    again = deployment.cli("dlq", "redrive", "--reason", "invalid timezone")
    assert f"redriven: {len(zoned)} record(s)" in again.stdout  # the fixed: duplicates now
    rerun = deployment.run(*recovery_args(recovery, workers=2), env=ALIASES)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_outputs_are_the_rule(deployment, [*sample.events, *pst])
    assert {g.lineage for g in letters(deployment) if g.redrive_count} == hopeless


def test_a_record_that_still_fails_stops_at_the_loop_guard(
    deployment: Deployment, tmp_path: Path
) -> None:
    recovery = init_recovery(tmp_path / "recovery", 1)
    deployment.produce("w", [(b"k1", b"\xff\xff not a walk-in")])
    deployment.produce("m", [(b"k2", b"\x0a")])  # truncated protobuf: undecodable
    assert deployment.run(*recovery_args(recovery)).returncode == 0
    lineages = {g.lineage for g in letters(deployment)}
    assert len(lineages) == 2

    for attempt in (1, 2):
        sent = deployment.cli("dlq", "redrive", "--reason", "undecodable", "--max-redrives", "2")
        assert "redriven: 2 record(s)" in sent.stdout, sent.stdout + sent.stderr
        assert deployment.run(*recovery_args(recovery)).returncode == 0
        counts = sorted(int(g.headers.get(REDRIVE_COUNT, b"0")) for g in letters(deployment))
        assert counts == sorted([0, 0] + [n for n in range(1, attempt + 1) for _ in range(2)])
        assert {g.lineage for g in letters(deployment)} == lineages  # one lineage per record

    stopped = deployment.cli("dlq", "redrive", "--reason", "undecodable", "--max-redrives", "2")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.count("loop guard:") == 2
    assert "redriven: 0 record(s)" in stopped.stdout
    assert "2 at the loop guard of 2" in stopped.stdout
