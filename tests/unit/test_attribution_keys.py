"""Customer keys and state routes: ids never share state; routes are bounded and stable.

Module: ``attribution.keys``.
"""

from __future__ import annotations

import pytest

from tests.attribution_support import HOLD, H, T, step, tick
from walkthroughs.attribution import (
    STATE_SHARDS,
    Shard,
    customer_hash,
    customer_key,
    shard_of,
    shard_of_hash,
    split_customer_key,
)
from walkthroughs.wire.schema import (
    MessageEvent,
    WalkInEvent,
)


def test_ids_with_separators_never_share_state() -> None:
    shard = Shard()
    step(shard, MessageEvent("m", "a:b", "c", T - H, 1, ""), 0)
    step(shard, WalkInEvent("w", "a", "b:c", "", T, "2030-03-17"), 0)
    assert tick(shard, HOLD) == []
    assert len(shard) == 2


def test_shard_keys_are_bounded_and_stable() -> None:
    keys = {shard_of(f"b{i}", f"c{i}") for i in range(20_000)}
    assert len(keys) == STATE_SHARDS
    assert shard_of("business", "customer") == "r43-1678"  # pinned: part of the recovery format


def test_the_claim_step_places_a_customer_by_its_owner_hash_as_shard_of_does() -> None:
    pairs = [(f"b{i % 37}", f"c{i}") for i in range(5_000)] + [("", "\x00"), ("é", "ü" * 300)]
    for business, customer in pairs:
        assert shard_of_hash(customer_hash(business, customer)) == shard_of(business, customer)


@pytest.mark.parametrize(
    ("business", "customer"), [("a:b", "c"), ("a", "b:c"), ("", "x"), ("1:", ""), ("é", "😀")]
)
def test_customer_keys_split_back_into_their_ids(business: str, customer: str) -> None:
    assert split_customer_key(customer_key(business, customer)) == (business, customer)
