"""The timing parameters of the rule, and the deadlines they give (no I/O, no state).

Every deadline is computed from an event's stored read time with the settings of the running
process, never stored itself: a restart with another ``WALKTHROUGHS_HOLD`` or
``WALKTHROUGHS_ALLOWED_LATENESS`` applies the new values to the state it resumes (only timers
already set when the snapshot was taken keep their old instant, once).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rules:
    """The attribution window, hold and allowed lateness, in nanoseconds.

    ``erasure_horizon_ns``: for this long after an erasure request is read, events of the
    erased customer are dropped (counted, never dead-lettered): late receipts and backfills of
    what the request removed must not bring it back.
    """

    window_ns: int
    hold_ns: int
    lateness_ns: int
    erasure_horizon_ns: int = 30 * 86_400 * 1_000_000_000

    def __post_init__(self) -> None:
        """Reject values the lifecycle cannot honour."""
        if self.window_ns <= 0:
            msg = f"window must be positive, got {self.window_ns} ns"
            raise ValueError(msg)
        if not 0 <= self.hold_ns <= self.lateness_ns:
            msg = f"need 0 <= hold <= allowed lateness, got {self.hold_ns}, {self.lateness_ns} ns"
            raise ValueError(msg)
        if self.erasure_horizon_ns < 0:
            msg = f"erasure horizon must not be negative, got {self.erasure_horizon_ns} ns"
            raise ValueError(msg)

    def credits(self, sent_at_ns: int, started_at_ns: int) -> bool:
        """Tell whether a message sent then is in the window of a walk-in started then."""
        return started_at_ns - self.window_ns < sent_at_ns <= started_at_ns

    def decision_at(self, read_at_ns: int) -> int:
        """When the first decision of a walk-in read then is due: ``hold`` later."""
        return read_at_ns + self.hold_ns

    def message_expiry(self, read_at_ns: int) -> int:
        """When a message read then is let go: ``window + allowed_lateness`` later.

        So is the trace of a walk-in read then (a ghost): ``window`` after it was let go, a
        duplicate of it is recognised and a message that would have credited it is ``late``.
        """
        return read_at_ns + self.window_ns + self.lateness_ns
