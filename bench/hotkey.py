"""Skew: events/s for one hot (business, customer) as its retained messages grow.

Usage: python -m bench.hotkey [--sizes 1000,10000,100000,200000] [--events N] [--runs N].

For each size n, one customer first retains n messages (sent over the window, read at one
instant so nothing expires) and 50 walk-ins, decided; then ``--events`` more events for that
customer (nine messages for each walk-in, random times in the window) are processed in batches
of 100, as a hot key's share of the dataflow's batches. Prints events/s per size (median of
runs) and the ratio of the largest size's rate to the smallest's: O(log n) per event keeps it
near 1 (the contract: a hot key slows nothing else down), where a scan per event made it ~n.

Then a backfill: one customer holds ``--backfill-walkins`` walk-ins, half of them retained and half
let go (ghosts), all crediting messages that were let go since; old messages (sent before those)
arrive in batches of 100. Each credits all those walk-ins by time but beats none: a pass that
visits every walk-in in a message's window costs O(m) per message there, the index O(log m).
"""

from __future__ import annotations

import argparse
import random
import time

from bench.common import median_of, report
from walkthroughs.attribution import Event, Shard, process_batch
from walkthroughs.runtime.config import DEFAULT_RULES
from walkthroughs.wire.schema import MessageEvent, Origin, WalkInEvent

ORIGIN = Origin("bench", 0, 0, None, b"")
WALKINS = 50
BATCH = 100
NOW = 1_900_000_000 * 10**9
DAY = 86_400 * 10**9


def hot_shard(size: int, rng: random.Random) -> Shard:
    """A shard whose one customer retains ``size`` messages and ``WALKINS`` decided walk-ins."""
    shard = Shard()
    window = DEFAULT_RULES.window_ns
    messages = [
        MessageEvent(f"m{i}", "hot-business", "default", NOW - rng.randrange(window), 1, "c")
        for i in range(size)
    ]
    for first in range(0, size, 10_000):
        process_batch(
            shard, [(m, ORIGIN) for m in messages[first : first + 10_000]], NOW, DEFAULT_RULES
        )
    walkins = [
        WalkInEvent(f"w{i}", "hot-business", "default", "l", NOW - rng.randrange(DAY), "2030-03-17")
        for i in range(WALKINS)
    ]
    process_batch(shard, [(w, ORIGIN) for w in walkins], NOW, DEFAULT_RULES)
    process_batch(shard, (), NOW + DEFAULT_RULES.hold_ns, DEFAULT_RULES)  # decided
    return shard


def more_events(count: int, rng: random.Random) -> list[Event]:
    """Nine messages for each walk-in, for the hot customer, at random times in the window."""
    window = DEFAULT_RULES.window_ns
    out: list[Event] = []
    for i in range(count):
        if i % 10 == 9:
            event: MessageEvent | WalkInEvent = WalkInEvent(
                f"x{i}", "hot-business", "default", "l", NOW - rng.randrange(DAY), "2030-03-17"
            )
        else:
            event = MessageEvent(
                f"n{i}", "hot-business", "default", NOW - rng.randrange(window), 2, ""
            )
        out.append((event, ORIGIN))
    return out


def backfill_rate(walkins: int, count: int) -> float:
    """Events/s of ``count`` old messages into a customer of ``walkins`` walk-ins and ghosts."""
    rules = DEFAULT_RULES
    shard = Shard()
    base = NOW - DAY  # sent times: the walk-ins start just after their message, all within a day
    messages = [
        (MessageEvent(f"m{i}", "hot-business", "default", base + i, 1, "c"), ORIGIN)
        for i in range(walkins)
    ]
    process_batch(shard, messages, NOW, rules)

    def visits(first: int, read_at: int) -> None:
        events: list[Event] = [
            (WalkInEvent(f"w{i}", "hot-business", "default", "l", base + i, "2030-03-17"), ORIGIN)
            for i in range(first, walkins, 2)
        ]
        process_batch(shard, events, read_at, rules)

    visits(0, NOW + rules.window_ns)  # let go a day later: ghosts by then
    visits(1, NOW + rules.window_ns + rules.lateness_ns // 2)  # still retained then
    now = NOW + rules.window_ns + rules.lateness_ns  # every message let go, half the walk-ins
    process_batch(shard, (), now, rules)
    old = [
        (MessageEvent(f"old{i}", "hot-business", "default", base - 1 - i, 2, ""), ORIGIN)
        for i in range(count)
    ]
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        process_batch(shard, old[first : first + BATCH], now, rules)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,200000")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backfill-walkins", type=int, default=10_000)
    parser.add_argument("--backfill-events", type=int, default=2_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rates: dict[str, int] = {}
    for size in sizes:

        def once(size: int = size) -> float:
            rng = random.Random(size)
            shard = hot_shard(size, rng)
            events = more_events(args.events, rng)
            now = NOW + DEFAULT_RULES.hold_ns + 1
            started = time.perf_counter()
            for first in range(0, len(events), BATCH):
                process_batch(shard, events[first : first + BATCH], now, DEFAULT_RULES)
                now += 1_000_000  # 1 ms per batch: decisions fall due as the run goes on
            return len(events) / (time.perf_counter() - started)

        median, _ = median_of(args.runs, once)
        rates[str(size)] = round(median)
    smallest, largest = rates[str(sizes[0])], rates[str(sizes[-1])]
    backfill, _ = median_of(
        args.runs, lambda: backfill_rate(args.backfill_walkins, args.backfill_events)
    )
    report(
        "hotkey",
        events=args.events,
        batch=BATCH,
        events_per_s_by_retained_messages=rates,
        ratio_largest_to_smallest=round(largest / smallest, 2),
        backfill_walkins=args.backfill_walkins,
        backfill_events_per_s=round(backfill),
    )


if __name__ == "__main__":
    main()
