"""Route names: Bytewax's hash reproduced, and the names spread evenly over worker counts."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from walkthroughs.utils.routes import NAMES, ROUTES, carriers, shares, siphash13, worker_of

SAMPLES = [b"a", b"abcdefgh", b"r00-48\xff", bytes(range(15)), "caf\u00e9 \u2603".encode() * 9]


def test_siphash13_is_the_one_cpython_and_rust_use_with_zero_keys() -> None:
    """CPython hashes bytes with SipHash-1-3 too; with ``PYTHONHASHSEED=0`` its keys are zero."""
    code = f"import sys; print([hash(b) for b in {SAMPLES!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    signed = [h - (1 << 64) if h >= 1 << 63 else h for h in map(siphash13, SAMPLES)]
    assert json.loads(out) == signed


def test_names_are_unique_and_land_on_worker_index_mod_w_for_divisors_of_48() -> None:
    assert len(NAMES) == ROUTES == len(set(NAMES))
    for workers in (1, 2, 3, 4, 6, 8, 12, 16, 24):
        assert shares(NAMES, workers) == [ROUTES // workers] * workers


def test_every_worker_count_up_to_24_gets_at_most_one_route_over_its_even_share() -> None:
    for workers in range(1, 25):
        held = shares(NAMES, workers)
        assert max(held) <= math.ceil(ROUTES / workers) + 1, (workers, held)
        assert min(held) >= 1


def test_each_carrier_reaches_its_worker() -> None:
    for workers in range(1, 25):
        keys = carriers(workers)
        assert [worker_of(key, workers) for key in keys] == list(range(workers))
