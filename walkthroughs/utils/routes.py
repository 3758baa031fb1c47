"""Route names: state keys that Bytewax spreads evenly over any number of workers (no I/O).

The stateful steps are keyed by a few dozen *routes*, not by customer: a poll of the inputs
then makes parcels of tens of events per route, and Bytewax's cost is paid per parcel
(``flow``). With so few keys, where each one lands matters. Bytewax 0.21 sends a key to worker
``siphash13(key) % workers``: Rust's ``DefaultHasher`` (SipHash-1-3, zero keys) over the key's
UTF-8 and a closing ``0xff`` (``StateKey`` hashes its ``String``). Left to chance, 48 keys on 24
workers would give one worker four routes and another none. So the names are chosen
(``choose_names``): each name's hash is its index modulo 48, which puts route ``i`` on worker
``i % W`` for every ``W`` dividing 48 (1, 2, 3, 4, 6, 8, 12, 16, 24); among such names, those
that spread best over the other worker counts up to 24. ``tests/flow/test_routes.py`` checks
on Bytewax itself that keys land where ``worker_of`` says.

The names are part of the recovery format: state is stored under them.
"""

from __future__ import annotations

import itertools
from typing import Final

ROUTES: Final = 48
"""How many routes hold the state (and the walk-in id registry): twice the largest worker
count of ``k8s/`` (24), so that every worker count up to 24 gets an even share or nearly."""

NAMES: Final = (
    "r00-48",
    "r01-249",
    "r02-66",
    "r03-471",
    "r04-7015",
    "r05-1849",
    "r06-1680",
    "r07-12678",
    "r08-8700",
    "r09-6513",
    "r10-1965",
    "r11-2977",
    "r12-2083",
    "r13-12603",
    "r14-1280",
    "r15-19240",
    "r16-1110",
    "r17-8957",
    "r18-5055",
    "r19-14300",
    "r20-2645",
    "r21-7179",
    "r22-1579",
    "r23-9803",
    "r24-15810",
    "r25-17958",
    "r26-1838",
    "r27-2508",
    "r28-13936",
    "r29-5302",
    "r30-953",
    "r31-164",
    "r32-7033",
    "r33-5928",
    "r34-7954",
    "r35-13106",
    "r36-8398",
    "r37-5815",
    "r38-3967",
    "r39-14875",
    "r40-12255",
    "r41-7040",
    "r42-4834",
    "r43-1678",
    "r44-2826",
    "r45-177",
    "r46-18267",
    "r47-428",
)
"""Route ``i``'s state key (``choose_names``)."""

_MASK: Final = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys: Rust's ``DefaultHasher`` over ``data`` (one ``write``)."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573
    end = len(data) - len(data) % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= m
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker Bytewax 0.21 gives a state key to, out of ``workers``."""
    return siphash13(key.encode() + b"\xff") % workers


def shares(names: tuple[str, ...], workers: int) -> list[int]:
    """How many of ``names`` each of ``workers`` workers holds."""
    counts = [0] * workers
    for name in names:
        counts[worker_of(name, workers)] += 1
    return counts


def choose_names(routes: int = ROUTES, largest: int = 24, tries: int = 20_000) -> tuple[str, ...]:
    """Names whose hash is their index modulo ``routes``, the most even over other counts.

    Picked one by one so that each worker count up to ``largest`` stays as even as the choice
    allows. Run once (``python -m walkthroughs.utils.routes``); the result is ``NAMES``.
    """
    counts = {w: [0] * w for w in range(1, largest + 1)}
    names: list[str] = []
    for i in range(routes):
        best: tuple[int, str, int] | None = None
        found = 0
        for n in itertools.count():
            name = f"r{i:02d}-{n}"
            h = siphash13(name.encode() + b"\xff")
            if h % routes != i:
                continue
            found += 1
            cost = sum(held[h % w] - min(held) for w, held in counts.items())
            if best is None or cost < best[0]:
                best = (cost, name, h)
            if cost == 0 or found >= tries // routes or n >= tries * routes:
                break
        assert best is not None
        for w, held in counts.items():
            held[best[2] % w] += 1
        names.append(best[1])
    return tuple(names)


def carriers(workers: int) -> tuple[str, ...]:
    """One key per worker: ``carriers(W)[w]`` lands on worker ``w`` of ``W``.

    What a step keys a bundle by to send it to the worker that holds some routes
    (``flow.Cluster``).
    """
    names = []
    for w in range(workers):
        n = next(n for n in itertools.count() if worker_of(f"to-{w}-{n}", workers) == w)
        names.append(f"to-{w}-{n}")
    return tuple(names)


if __name__ == "__main__":
    chosen = choose_names()
    print(chosen)
    for w in range(1, 25):
        print(w, shares(chosen, w))
