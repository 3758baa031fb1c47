"""Erasure in the pure logic: the request on the wire, and what a shard drops and keeps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest

from walkthroughs.attribution import Event, Rules, Shard, customer_key, process_batch
from walkthroughs.attribution.keys import erasure_reference
from walkthroughs.errors import DecodeError
from walkthroughs.wire.erasure_requests import (
    decode_erasure_record,
    decode_request,
    encode_request,
    request_key,
)
from walkthroughs.wire.schema import (
    Attributed,
    DeadLetter,
    Erased,
    ErasureRequest,
    ErasureWithdrawn,
    MessageEvent,
    Origin,
    Reason,
    WalkInEvent,
)

S = 1_000_000_000
H = 3600 * S
T = 1_900_000_000 * S
NOW = T + H
RULES = Rules(7 * 24 * H, 30 * S, 24 * H, erasure_horizon_ns=10 * 24 * H)
ORIGIN = Origin("t", 0, 0, b"k", b"v")


def msg(mid: str, customer: str = "c", sent_at: int = T - H) -> tuple[MessageEvent, Origin]:
    return MessageEvent(mid, "b", customer, sent_at, 1, ""), ORIGIN


def walkin(wid: str, customer: str = "c", started_at: int = T) -> tuple[WalkInEvent, Origin]:
    return WalkInEvent(wid, "b", customer, "", started_at, "2030-03-17"), ORIGIN


def erase(customer: str = "c") -> tuple[ErasureRequest, Origin]:
    return ErasureRequest("b", customer, T), ORIGIN


def erased(out: Sequence[object]) -> list[Erased]:
    return [o for o in out if isinstance(o, Erased)]


def walkthroughs(out: Sequence[object]) -> list[tuple[str, str]]:
    return [
        (o.walkthrough.walkin_id, o.walkthrough.message_id)
        for o in out
        if isinstance(o, Attributed)
    ]


# --- the request on the wire ----------------------------------------------------------------


def test_a_request_round_trips_and_is_keyed_by_its_customer() -> None:
    at = datetime(2030, 3, 17, 12, 0, 0, 250_000, tzinfo=UTC)
    key, value = encode_request("b:1", 'c"2', at, "asked by phone")
    assert key == request_key("b:1", 'c"2') == orjson.dumps(["b:1", 'c"2'])
    request = decode_request(value)
    assert request == ErasureRequest("b:1", 'c"2', int(at.timestamp()) * S + 250_000_000)


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"not json", Reason.UNDECODABLE, "not JSON"),
        (b"[1, 2]", Reason.UNDECODABLE, "not a JSON object"),
        (None, Reason.UNDECODABLE, "not JSON"),
        (b'{"business_id": "b"}', Reason.MISSING_FIELD, "customer_id"),
        (b'{"business_id": "", "customer_id": "c"}', Reason.MISSING_FIELD, "business_id"),
        (b'{"business_id": 7, "customer_id": "c"}', Reason.MISSING_FIELD, "business_id"),
        (
            orjson.dumps({"business_id": "b", "customer_id": "x" * 1025}),
            Reason.ID_TOO_LONG,
            "customer_id: 1025 bytes",
        ),
    ],
)
def test_a_bad_request_says_what_is_wrong(value: bytes | None, reason: Reason, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_request(value)
    assert caught.value.reason == reason
    assert detail in str(caught.value)


@pytest.mark.parametrize(
    ("key", "decoded"),
    [
        (request_key("b:1", 'c"2'), ErasureWithdrawn("b:1", 'c"2', 0)),
        (b"not json", Reason.UNDECODABLE),
        (None, Reason.UNDECODABLE),
        (b'["b"]', Reason.UNDECODABLE),
        (b'["b", ""]', Reason.MISSING_FIELD),
        (orjson.dumps(["b", "x" * 1025]), Reason.ID_TOO_LONG),
    ],
)
def test_a_tombstone_of_a_request_withdraws_it_when_its_key_names_a_customer(
    key: bytes | None, decoded: ErasureWithdrawn | Reason
) -> None:
    origin = Origin("erasures", 0, 5, key, None)
    result = decode_erasure_record(origin)
    if isinstance(decoded, Reason):
        assert isinstance(result, DeadLetter)
        assert result.reason == decoded
    else:
        assert result == (decoded, origin)
        assert type(result[0]) is ErasureWithdrawn


def test_a_withdrawn_request_erases_nothing_and_ends_no_marker() -> None:
    shard = Shard()
    process_batch(shard, [msg("m1"), (ErasureRequest("b", "c", T), ORIGIN)], NOW, RULES)
    out = process_batch(shard, [(ErasureWithdrawn("b", "c", 0), ORIGIN), msg("m2")], NOW, RULES)
    assert out == []
    assert shard.suppressed == 1  # m2: the erasure stands
    process_batch(
        shard, [msg("m3", customer="d"), (ErasureWithdrawn("b", "d", 0), ORIGIN)], NOW, RULES
    )
    assert shard.customer(customer_key("b", "d")) is not None  # nothing of d was erased


@pytest.mark.parametrize("at", ['"yesterday"', "1717000000", "null", '"2030-13-45"', "[1]"])
def test_a_request_with_an_unreadable_time_still_erases(at: str) -> None:
    """requested_at only feeds the audit's delay: refusing the request for it would keep the
    customer's data and copy its ids into the DLQ."""
    value = f'{{"business_id": "b", "customer_id": "c", "requested_at": {at}}}'.encode()
    assert decode_request(value) == ErasureRequest("b", "c", 0)


def test_the_reference_names_the_customer_without_its_ids() -> None:
    ref = erasure_reference("business-1", "customer-1")
    assert len(ref) == 16
    assert int(ref, 16) >= 0
    assert ref != erasure_reference("business-1", "customer-2")
    assert "customer" not in ref


# --- a shard ----------------------------------------------------------------------------------


def test_state_is_dropped_at_once_and_later_events_are_counted_not_applied() -> None:
    shard = Shard()
    first: list[Event] = [msg("m1"), walkin("w1"), msg("k1", "kept"), walkin("k", "kept")]
    process_batch(shard, first, T, RULES)
    out = process_batch(shard, [], NOW, RULES)  # both decided
    assert sorted(walkthroughs(out)) == [("k", "k1"), ("w1", "m1")]

    out = process_batch(shard, [erase()], NOW, RULES)
    assert erased(out) == [Erased("b", "c", ("w1",), 1, 1, 0, T)]
    assert shard.customer(customer_key("b", "c")) is None
    assert shard.retained() == (1, 1)  # the other customer's

    later: list[Event] = [
        msg("m2", sent_at=T - 1),
        walkin("w2"),
        walkin("w1"),
        msg("k2", "kept", T - 1),
    ]
    out = process_batch(shard, later, NOW + S, RULES)
    out += process_batch(shard, [], NOW + 2 * H, RULES)
    assert walkthroughs(out) == [("k", "k2")]  # the other customer is revised as ever
    assert shard.suppressed == 3
    assert shard.customer(customer_key("b", "c")) is None


def test_a_decision_of_the_requests_own_batch_is_not_emitted() -> None:
    rules = Rules(RULES.window_ns, 0, RULES.lateness_ns)  # hold 0: decided on arrival
    out = process_batch(Shard(), [msg("m1"), walkin("w1"), erase()], T, rules)
    assert walkthroughs(out) == []
    # decided, so tombstoned, though its record never left the batch: a tombstone of a key
    # with no record is harmless, and the rule stays simple
    assert erased(out) == [Erased("b", "c", ("w1",), 1, 1, 0, T)]


def test_a_late_letter_of_the_requests_own_batch_is_not_emitted() -> None:
    """A late message read just before the request, in its batch, is a copy of the customer's
    event: it must not reach the DLQ. Another customer's late letter of that batch still does."""
    shard = Shard()
    process_batch(shard, [walkin("w1"), walkin("w2", customer="d")], T, RULES)
    gone = T + RULES.lateness_ns + 1  # both walk-ins let go (ghosts) by then
    process_batch(shard, [], gone, RULES)
    out = process_batch(shard, [msg("m1"), msg("m2", customer="d"), erase()], gone, RULES)
    late = [o for o in out if isinstance(o, DeadLetter)]
    assert [(d.reason, "'m2'" in d.error) for d in late] == [(Reason.LATE, True)]


def test_packed_customers_and_ghosts_are_erased_too() -> None:
    shard = Shard(live_limit=2)
    others = [msg(f"o{i}", f"other{i}") for i in range(6)]
    process_batch(shard, [msg("m1"), walkin("w1"), *others], T, RULES)
    process_batch(shard, [], NOW, RULES)  # decided; then let go (allowed lateness): a ghost
    process_batch(shard, [walkin("w2", started_at=T + 1)], T + 25 * H, RULES)
    process_batch(shard, [], T + 26 * H, RULES)
    shard.snapshot()  # packs every customer
    before = shard.retained()

    (gone,) = erased(process_batch(shard, [erase()], T + 27 * H, RULES))

    assert gone.walkin_ids == ("w2",)
    assert gone.ghost_ids == ("w1",)  # it has a record, but its id may be another's by now
    assert (gone.messages, gone.walkins, gone.ghosts) == (1, 1, 1)
    assert shard.retained() == (before[0] - 1, before[1] - 1)


def test_a_replayed_request_finds_nothing_more_and_is_still_reported() -> None:
    shard = Shard()
    process_batch(shard, [msg("m1"), erase()], T, RULES)
    again = erased(process_batch(shard, [erase()], T + S, RULES))
    assert again == [Erased("b", "c", (), 0, 0, 0, T)]  # the sinks finish a cut-short erasure


def test_the_marker_survives_a_snapshot_and_ends_with_the_horizon() -> None:
    shard = Shard()
    process_batch(shard, [msg("m1"), erase()], T, RULES)
    assert len(shard) == 0
    assert not shard.is_empty()  # the marker: the state key must not be discarded
    process_batch(shard, [], T + 9 * 24 * H, RULES)  # the erased customer's stale timer fires
    assert shard.next_deadline_ns() == T + RULES.erasure_horizon_ns  # the marker's sweep

    restored = Shard.restore(shard.snapshot().blob())
    process_batch(restored, [msg("m2")], T + RULES.erasure_horizon_ns - 1, RULES)
    assert restored.suppressed == 1
    assert len(restored) == 0

    process_batch(restored, [], T + RULES.erasure_horizon_ns, RULES)  # swept
    assert restored.is_empty()
    assert restored.next_deadline_ns() is None
    process_batch(restored, [msg("m3")], T + RULES.erasure_horizon_ns + 1, RULES)
    assert len(restored) == 1  # the customer may come back
    assert restored.suppressed == 1
