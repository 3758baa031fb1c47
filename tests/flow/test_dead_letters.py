"""Bad records and reused walk-in ids go to the DLQ sink with their reason; the rest flows on."""

from __future__ import annotations

from collections import Counter

from google.protobuf.timestamp_pb2 import Timestamp

from tests.flow.driver import (
    HOUR,
    LATENESS,
    MESSAGES,
    MINUTE,
    T0,
    WALKINS,
    At,
    FlowDriver,
    Flush,
    Step,
)
from walkthroughs._pb.walkthroughs.v1 import events_pb2 as pb
from walkthroughs.wire.schema import Origin, Reason, Walkthrough

STARTED = Timestamp(seconds=T0 // 10**9)


def owners(walkthroughs: dict[str, Walkthrough]) -> dict[str, tuple[str, str]]:
    """Walk-in id -> (its customer, the message credited)."""
    return {i: (w.customer_id, w.message_id) for i, w in walkthroughs.items()}


def bad_records(driver: FlowDriver) -> list[tuple[Origin, Reason, str]]:
    """One record of each kind of bad input, with the reason and the error it must carry."""
    raw = driver.inputs.raw
    return [
        (raw(MESSAGES, b"\xff\x00garbage"), Reason.UNDECODABLE, "undecodable"),
        (raw(WALKINS, None), Reason.UNDECODABLE, "undecodable"),  # a tombstone
        (
            raw(
                MESSAGES,
                pb.ZenreachMessage(
                    message_id="m-bad", business_id="b", sent_at=STARTED
                ).SerializeToString(),
            ),
            Reason.MISSING_FIELD,
            "missing field customer_id",
        ),
        (
            raw(
                WALKINS,
                pb.WalkIn(walkin_id="w-bad", business_id="b", customer_id="c1").SerializeToString(),
            ),
            Reason.MISSING_FIELD,
            "missing field started_at",
        ),
        (
            raw(
                WALKINS,
                pb.WalkIn(
                    walkin_id="w-mars",
                    business_id="b",
                    customer_id="c1",
                    started_at=STARTED,
                    timezone="Mars/Olympus_Mons",
                ).SerializeToString(),
            ),
            Reason.INVALID_TIMEZONE,
            "invalid timezone 'Mars/Olympus_Mons'",
        ),
        (
            raw(
                MESSAGES,
                pb.ZenreachMessage(
                    message_id="m-9",
                    business_id="b",
                    customer_id="c1",
                    channel=9,  # type: ignore[arg-type]  # outside the enum: that is the point
                    sent_at=STARTED,
                ).SerializeToString(),
            ),
            Reason.INVALID_CHANNEL,
            "invalid channel",
        ),
        (
            raw(
                MESSAGES,
                pb.ZenreachMessage(
                    message_id="m-1970",
                    business_id="b",
                    customer_id="c1",
                    sent_at=Timestamp(seconds=5),
                ).SerializeToString(),
            ),
            Reason.INVALID_TIMESTAMP,
            "invalid timestamp",
        ),
    ]


def test_bad_records_reach_the_dlq_with_their_reason_and_good_ones_are_still_attributed(
    driver: FlowDriver,
) -> None:
    """Every kind of bad record, each between good ones: none stops or disturbs the flow."""
    inputs = driver.inputs
    bad = bad_records(driver)
    good = [
        inputs.message("m1", "b", "c1", T0 - HOUR),
        inputs.walkin("w1", "b", "c1", T0, timezone="America/New_York"),
        inputs.message("m2", "b", "c2", T0 - MINUTE),
        inputs.walkin("w2", "b", "c2", T0 + MINUTE),
        inputs.walkin("w3", "b", "c3", T0),  # no message: no walkthrough
        inputs.message("m4", "b", "c1", T0 - MINUTE),  # the better one for w1
    ]
    steps: list[Origin] = []
    for i, record in enumerate(good):
        steps.append(record)
        if i < len(bad):
            steps.append(bad[i][0])
    steps += [b[0] for b in bad[len(good) :]]

    driver.run(steps)

    assert Counter(driver.reasons()) == Counter((origin, reason) for origin, reason, _ in bad)
    for key, dead in driver.dead_letters:
        assert key == f"{dead.origin.topic}#{dead.origin.partition}"  # by source, not by state
        wanted = next(error for origin, _, error in bad if origin == dead.origin)
        assert dead.error.startswith(wanted), dead.error
    expected = inputs.expected()
    assert set(expected) == {"w1", "w2"}
    assert expected["w1"].local_date == "2001-09-08"  # 01:46 UTC is still the 8th in New York
    assert driver.latest() == expected
    assert driver.mongo_documents() == expected


def test_walkin_id_reused_by_another_customer_is_dead_lettered(driver: FlowDriver) -> None:
    """An id's first (business, customer) owns it; another's walk-in with it is a bad record.

    The owner's own repeat is an ordinary duplicate (not a dead letter), and the other
    customer's message, which would credit the reused walk-in, attributes nothing.
    """
    inputs = driver.inputs
    owner = inputs.walkin("w-shared", "b", "c1", T0)
    reuse = inputs.walkin("w-shared", "b", "c2", T0 + MINUTE)
    steps: list[Step] = [
        inputs.message("m1", "b", "c1", T0 - HOUR),
        owner,
        inputs.message("m2", "b", "c2", T0),
        reuse,
        inputs.again(owner),
        inputs.walkin("w-other", "b", "c2", T0 + MINUTE),  # c2 still gets its own walk-ins
    ]

    driver.run(steps)

    assert driver.reasons() == [(reuse, Reason.WALKIN_ID_REUSED)]
    assert driver.dead_letters[0][1].error.startswith("walkin_id reused: 'w-shared'")
    credited = {"w-shared": ("c1", "m1"), "w-other": ("c2", "m2")}
    assert owners(driver.latest()) == credited
    assert owners(driver.mongo_documents()) == credited


def test_walkin_id_is_free_again_once_its_claim_lapsed(driver: FlowDriver) -> None:
    """A claim lasts allowed lateness after the owner last used the id; then another may."""
    inputs = driver.inputs
    steps: list[Step] = [
        inputs.message("m1", "b", "c1", T0 - HOUR),
        inputs.walkin("w-shared", "b", "c1", T0),
        At(T0 + LATENESS + HOUR),  # the owner's walk-in and its claim have lapsed
        Flush(),
        inputs.message("m2", "b", "c2", T0),
        inputs.walkin("w-shared", "b", "c2", T0 + MINUTE),
    ]

    driver.run(steps)

    assert driver.dead_letters == []
    assert [
        (a.walkthrough.customer_id, a.walkthrough.message_id) for a in driver.records_of("w-shared")
    ] == [
        ("c1", "m1"),
        ("c2", "m2"),
    ]
