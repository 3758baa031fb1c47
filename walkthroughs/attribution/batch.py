"""One processing batch: its instant, its rules, and what it decides, coalesced per walk-in.

The rule reports decisions here instead of emitting records: a walk-in that several messages of
one batch improve in turn ends the batch with one walkthrough, its latest (contract: at most one
record per walk-in per batch or flush tick). 200k ascending messages for 50 walk-ins read in
batches thus emit at most 50 records per batch, not one per improvement.
"""

from __future__ import annotations

from walkthroughs.attribution.keys import CustomerKey, split_customer_key
from walkthroughs.attribution.records import (
    M_CAMPAIGN,
    M_CHANNEL,
    M_ID,
    M_SENT,
    W_BEST,
    W_DATE,
    W_ID,
    W_LOCATION,
    W_READ,
    W_STARTED,
    WalkIn,
)
from walkthroughs.attribution.rules import Rules
from walkthroughs.wire.schema import Attributed, DeadLetter, Erased, new_attributed, new_walkthrough

Output = Attributed | DeadLetter | Erased


class Batch:
    """The context of one batch: read time ``now_ns`` and the deadlines of what is read now.

    Every event of a batch is read at the same instant, so its deadlines are computed once and
    each retained event stores the very same ``now_ns`` object (an int is ~32 bytes).
    """

    __slots__ = (
        "_walkthroughs",
        "decision_due",
        "erased",
        "late",
        "message_due",
        "now_ns",
        "rules",
    )

    def __init__(self, now_ns: int, rules: Rules) -> None:
        self.now_ns = now_ns
        self.rules = rules
        self.message_due = rules.message_expiry(now_ns)
        self.decision_due = rules.decision_at(now_ns)
        self.late: list[tuple[CustomerKey, DeadLetter]] = []  # of whose event, for ``forget``
        self.erased: list[Erased] = []
        # (customer, walkin_id) -> (latest walk-in, a record was emitted before, first decision)
        self._walkthroughs: dict[tuple[CustomerKey, str], tuple[WalkIn, bool, bool]] = {}

    def decided(self, key: CustomerKey, walkin: WalkIn) -> None:
        """A walk-in's first decision credits a message (a walk-in is decided once)."""
        self._walkthroughs[(key, walkin[W_ID])] = (walkin, False, True)

    def revised(self, key: CustomerKey, walkin: WalkIn, *, was_attributed: bool) -> None:
        """A decided walk-in credits a better message now (``was_attributed``: it credited one)."""
        at = (key, walkin[W_ID])
        entry = self._walkthroughs.get(at)
        if entry is None:
            self._walkthroughs[at] = (walkin, was_attributed, False)
        else:  # coalesced: the latest decision is the one emitted, flagged as the first was
            self._walkthroughs[at] = (walkin, entry[1], entry[2])

    def add_late(self, key: CustomerKey, letter: DeadLetter) -> None:
        """A ``late`` dead letter of the customer's event."""
        self.late.append((key, letter))

    def forget(self, key: CustomerKey) -> None:
        """Drop the customer's walkthroughs and late letters of this batch.

        It was erased after they were made; a late letter is a copy of its event, which the DLQ
        must not keep.
        """
        if any(at[0] == key for at in self._walkthroughs):
            self._walkthroughs = {at: v for at, v in self._walkthroughs.items() if at[0] != key}
        if any(k == key for k, _ in self.late):
            self.late = [(k, letter) for k, letter in self.late if k != key]

    def outputs(self) -> list[Output]:
        """The batch's records: a walkthrough per walk-in decided or revised, late, erased."""
        out: list[Output] = [
            _attributed(key[0], walkin, revision=revision, at_decision=first)
            for key, (walkin, revision, first) in self._walkthroughs.items()
        ]
        out += [letter for _, letter in self.late]
        out += self.erased
        return out


def _attributed(
    key: CustomerKey, walkin: WalkIn, *, revision: bool, at_decision: bool
) -> Attributed:
    """The walkthrough of an attributed walk-in (its read time matters only at its decision)."""
    message = walkin[W_BEST]
    if message is None:  # only attributed walk-ins are reported
        msg = f"walk-in {walkin[W_ID]!r} has no attribution to emit"
        raise RuntimeError(msg)
    business_id, customer_id = split_customer_key(key)
    walkthrough = new_walkthrough(
        (
            walkin[W_ID],
            business_id,
            customer_id,
            walkin[W_LOCATION],
            walkin[W_STARTED],
            message[M_ID],
            message[M_CHANNEL],
            message[M_CAMPAIGN],
            message[M_SENT],
            walkin[W_DATE],
        )
    )
    read_at = walkin[W_READ] if at_decision else 0
    return new_attributed((walkthrough, read_at, revision, at_decision))
