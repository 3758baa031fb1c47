"""The process's stop request: set on SIGTERM, read by every wait that could outlast a stop.

Kubernetes gives a pod ``terminationGracePeriodSeconds`` between SIGTERM and SIGKILL. Bytewax
stops its workers only when the Python call they are in returns, so a sink retrying a dead
server for minutes would hold the stop for minutes. Every such wait (a MongoDB retry's backoff,
a Kafka flush) waits through ``wait`` or checks ``requested`` and gives up once a stop is
requested: the epoch in progress is not committed, and the next start replays it.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
    """Ask every wait of the process to give up (the SIGTERM handler calls this)."""
    _requested.set()


def requested() -> bool:
    """Tell whether the process has been asked to stop."""
    return _requested.is_set()


def wait(seconds: float) -> None:
    """Sleep for ``seconds``, or less if a stop is requested meanwhile."""
    _requested.wait(seconds)


def reset() -> None:
    """Forget a stop request (tests that request one in-process)."""
    _requested.clear()
