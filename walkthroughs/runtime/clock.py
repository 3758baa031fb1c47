"""Processing time, injected: the attribution logic never reads the system clock itself.

Event time (``sent_at``, ``started_at``) decides attribution; processing time (when an event was
read) decides only hold and retention. Tests drive processing time with ``FakeClock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

NS_PER_MS = 1_000_000
NowGetter = Callable[[], int]
"""Returns processing time as integer nanoseconds since the Unix epoch, UTC."""


def system_now_ns() -> int:
    """Return the system's wall-clock time in nanoseconds since the epoch (UTC), to the ms.

    Millisecond steps are far finer than any hold or retention, and let every event read in the
    same millisecond share its deadlines in state (see ``Rules.read_deadlines``).
    """
    return time.time_ns() // NS_PER_MS * NS_PER_MS


class FakeClock:
    """A settable clock for tests: ``clock()`` returns the current fake time in ns."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        """Return the current fake time (ns since the epoch)."""
        return self.now_ns

    def advance(self, by_ns: int) -> None:
        """Move time forward; time never goes back."""
        if by_ns < 0:
            msg = f"a clock does not go back (advance by {by_ns} ns)"
            raise ValueError(msg)
        self.now_ns += by_ns
