"""A brute-force statement of the attribution rule, for tests to compare the real logic with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from walkthroughs.wire.schema import MessageEvent, WalkInEvent, Walkthrough


class OfACustomer(Protocol):
    """An event of one customer of one business (what ids are unique within)."""

    @property
    def business_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...


E = TypeVar("E", bound=OfACustomer)


def first_by_id(events: Iterable[object], kind: type[E], id_of: Callable[[E], str]) -> list[E]:
    """The events of one kind, the first copy of each id only (later copies are duplicates).

    Ids are unique per (business, customer): the service keeps no state across pairs.
    """
    seen: dict[tuple[str, str, str], E] = {}
    for e in events:
        if isinstance(e, kind):
            seen.setdefault((e.business_id, e.customer_id, id_of(e)), e)
    return list(seen.values())


def expected_walkthroughs(events: Iterable[object], window_ns: int) -> dict[str, Walkthrough]:
    """Apply the contract's rule to a set of events: walkin_id -> walkthrough, if attributed."""
    events = list(events)
    messages = first_by_id(events, MessageEvent, lambda m: m.message_id)
    result: dict[str, Walkthrough] = {}
    for w in first_by_id(events, WalkInEvent, lambda w: w.walkin_id):
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
