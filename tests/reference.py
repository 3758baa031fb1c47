"""A brute-force statement of the attribution rule, for tests to compare the real logic with."""

from __future__ import annotations

from collections.abc import Iterable

from walkthroughs.schema import MessageEvent, WalkInEvent, Walkthrough


def first_by_id_messages(events: Iterable[object]) -> list[MessageEvent]:
    seen: dict[str, MessageEvent] = {}
    for e in events:
        if isinstance(e, MessageEvent):
            seen.setdefault(e.message_id, e)
    return list(seen.values())


def first_by_id_walkins(events: Iterable[object]) -> list[WalkInEvent]:
    seen: dict[str, WalkInEvent] = {}
    for e in events:
        if isinstance(e, WalkInEvent):
            seen.setdefault(e.walkin_id, e)
    return list(seen.values())


def expected_walkthroughs(events: Iterable[object], window_ns: int) -> dict[str, Walkthrough]:
    """Apply the contract's rule to a set of events: walkin_id -> walkthrough, if attributed."""
    events = list(events)
    messages = first_by_id_messages(events)
    result: dict[str, Walkthrough] = {}
    for w in first_by_id_walkins(events):
        t = w.started_at_ns
        candidates = [
            m
            for m in messages
            if (m.business_id, m.customer_id) == (w.business_id, w.customer_id)
            and t - window_ns < m.sent_at_ns <= t
        ]
        if not candidates:
            continue
        best = max(candidates, key=lambda m: (m.sent_at_ns, m.message_id))
        result[w.walkin_id] = Walkthrough(
            w.walkin_id,
            w.business_id,
            w.customer_id,
            w.location_id,
            t,
            best.message_id,
            best.channel,
            best.campaign_id,
            best.sent_at_ns,
            w.local_date,
        )
    return result
