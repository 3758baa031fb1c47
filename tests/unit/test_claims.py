"""The walk-in id registry: first owner keeps the id while its walk-in can still emit."""

from __future__ import annotations

import pickle

import pytest

from walkthroughs.attribution.claims import SWEEP_EVERY_S, Claims, reused
from walkthroughs.wire.schema import Origin, Reason

S = 1_000_000_000
T0 = 1_900_000_000 * S
KEEP = 3600 * S


def test_the_first_owner_keeps_the_id_and_its_repeats_renew_the_claim() -> None:
    claims = Claims()
    assert claims.claim("w", owner=1, now_ns=T0, keep_ns=KEEP)
    assert not claims.claim("w", owner=2, now_ns=T0 + S, keep_ns=KEEP)  # reused
    assert claims.claim("w", owner=1, now_ns=T0 + KEEP - S, keep_ns=KEEP)  # a duplicate renews
    assert not claims.claim("w", owner=2, now_ns=T0 + KEEP + S, keep_ns=KEEP)  # still held


def test_an_expired_claim_frees_the_id_for_a_new_owner() -> None:
    claims = Claims()
    claims.claim("w", owner=1, now_ns=T0, keep_ns=KEEP)
    assert not claims.claim("w", owner=2, now_ns=T0 + KEEP - 1, keep_ns=KEEP)
    assert claims.claim("w", owner=2, now_ns=T0 + KEEP + S, keep_ns=KEEP)
    assert not claims.claim("w", owner=1, now_ns=T0 + KEEP + 2 * S, keep_ns=KEEP)


def test_sweeps_forget_expired_claims_and_snapshots_restore_the_rest() -> None:
    claims = Claims()
    claims.claim("old", owner=1, now_ns=T0, keep_ns=KEEP)
    claims.claim("new", owner=2, now_ns=T0 + KEEP, keep_ns=KEEP)
    assert claims.next_sweep_ns() == 0  # a fresh shard sweeps at once
    claims.sweep(T0 + KEEP + S)
    assert len(claims) == 1
    assert claims.next_sweep_ns() == T0 + KEEP + S + SWEEP_EVERY_S * S
    snapshot = claims.snapshot()
    claims.claim("later", owner=3, now_ns=T0 + KEEP + S, keep_ns=KEEP)
    restored = Claims.resumed(pickle.loads(pickle.dumps(snapshot)))
    assert len(restored) == 1  # the snapshot was a copy
    assert not restored.claim("new", owner=9, now_ns=T0 + KEEP + S, keep_ns=KEEP)
    restored.sweep(T0 + 3 * KEEP)
    assert len(restored) == 0
    assert restored.next_sweep_ns() is None


def test_the_reused_dead_letter_names_the_reason_and_cuts_a_long_id() -> None:
    dead = reused(Origin("w", 1, 2, b"k", b"v"), "x" * 1000)
    assert dead.reason is Reason.WALKIN_ID_REUSED
    assert dead.error.startswith("walkin_id reused: 'xxxx")
    assert len(dead.error) < 250


def test_a_snapshot_of_another_format_is_refused_naming_both() -> None:
    """Format 1 was the bare dict under 64 keys ``id-NN``: its ids live on other routes now."""
    with pytest.raises(ValueError, match=r"claims has format 1, this version reads 2"):
        Claims.resumed({"w": 1})
    with pytest.raises(ValueError, match=r"claims has format 3, this version reads 2"):
        Claims.resumed((3, {}))
    with pytest.raises(ValueError, match=r"claims has format \?, this version reads 2"):
        Claims.resumed(())  # not an IndexError
