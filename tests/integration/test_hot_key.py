"""Skew on the real stack: a (business, customer) with 200k messages beside ordinary traffic.

A default customer id or a test account collects hundreds of thousands of messages. Its events
cost O(log n) each (``attribution/crowded.py``) and its revisions are coalesced per batch, so on
one worker it neither stalls the other keys nor floods the output topic; the results stay the
rule for every key.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter

from tests.integration.dataflow_harness import START_NS, WINDOW_NS, Deployment
from tests.reference import expected_walkthroughs
from walkthroughs.tools import traffic
from walkthroughs.tools.topics import read_topic
from walkthroughs.wire.codec import decode_walkthrough, encode_message, encode_walkin, local_date
from walkthroughs.wire.schema import MessageEvent, WalkInEvent

HOT_MESSAGES = 200_000
HOT_WALKINS = 50
S = 1_000_000_000


def hot_key_traffic() -> tuple[list[MessageEvent], list[WalkInEvent]]:
    """200k messages sent in ascending order over the window, and 50 walk-ins they credit."""
    last_walkin = START_NS + 2 * traffic.DAY
    step = (WINDOW_NS - 2 * traffic.DAY) // HOT_MESSAGES
    messages = [
        MessageEvent(
            f"hot-{i:06d}", "hot-business", "default", START_NS - WINDOW_NS // 2 + i * step, 1, ""
        )
        for i in range(HOT_MESSAGES)
    ]
    starts = [last_walkin - i * 3600 * S for i in range(HOT_WALKINS)]
    walkins = [
        WalkInEvent(f"hot-w{i}", "hot-business", "default", "", t, local_date(t, ""))
        for i, t in enumerate(starts)
    ]
    return messages, walkins


def test_a_key_with_200k_messages_stays_exact_and_starves_nothing(deployment: Deployment) -> None:
    sample = traffic.generate(
        seed=5, businesses=6, customers=400, start_ns=START_NS, bad_records=False
    )
    hot_messages, hot_walkins = hot_key_traffic()
    # The hot key's messages first: every other key's events queue behind them on the worker.
    deployment.produce("m", [(m.message_id.encode(), encode_message(m)) for m in hot_messages])
    deployment.produce("w", [(b"hot", encode_walkin(w)) for w in hot_walkins])
    deployment.feed(sample)

    started = time.monotonic()
    proc = deployment.run("-w", "1", timeout_s=600, WALKTHROUGHS_HOLD="0s")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    # The rule by brute force, over every other key and, for the hot one, the message each of
    # its walk-ins can credit: the last one sent at or before it (sent times are distinct).
    sent = [m.sent_at_ns for m in hot_messages]
    credited = [hot_messages[bisect_right(sent, w.started_at_ns) - 1] for w in hot_walkins]
    expected = expected_walkthroughs([*sample.events, *credited, *hot_walkins], WINDOW_NS)
    assert sum(1 for w in expected if w.startswith("hot-")) == HOT_WALKINS
    assert deployment.output() == expected

    records = read_topic(deployment.kafka, deployment.topic("out"))
    per_walkin = Counter(decode_walkthrough(r.value).walkin_id for r in records if r.value)
    # Without coalescing every ascending message is a revision of every hot walk-in decided
    # before it (~10M records); with it, a walk-in gets at most one record per batch.
    hot_records = sum(n for w, n in per_walkin.items() if w.startswith("hot-"))
    assert hot_records <= HOT_WALKINS * 2_000, hot_records
    print(f"bounded run with a 200k-message key: {elapsed:.1f} s, {hot_records} hot records")
    # A scan per event made this key quadratic: minutes of one core for 200k messages, with
    # every other key of the worker waiting behind it. Generous, so as to hold on a slow host.
    assert elapsed < 240, f"the bounded run took {elapsed:.0f} s"
