"""Named crash points for the reliability tests: a real ``kill -9`` at an exact place.

``WT_FAILPOINT=<name>:<n>`` makes the process SIGKILL itself the n-th time it passes ``<name>``.
Unset (always, in production), ``hit`` is one dictionary lookup. The variable deliberately lacks
the ``WALKTHROUGHS_`` prefix: it is not a setting of the service.

Points: ``kafka.before_confirm`` (records handed to the producer, not yet acknowledged),
``mongo.between_writes`` (walkthroughs upserted, counts not yet recomputed).
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "WT_FAILPOINT"
_lock = threading.Lock()
_hits: dict[str, int] = {}


def hit(name: str) -> None:
    """Count a pass through ``name``; die like ``kill -9`` if the test asked for this one."""
    armed = os.environ.get(ENV)
    if not armed:
        return
    point, _, nth = armed.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
