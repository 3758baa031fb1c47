"""The proof an erasure happened: one audit line and the metrics per stage, never an id.

``erasure_state`` when the customer left state, ``erasure_outputs`` when its MongoDB documents
were deleted and its tombstones acknowledged. Both name the customer by ``reference`` (16 hex
digits of a digest of its ids, printed by ``erase``), with counts of what was removed and the
time since the request (``since_request_ms``): how long the erasure took to take effect.
A replayed request logs again, with zeros where nothing was left.
"""

from __future__ import annotations

import logging

from walkthroughs.attribution import erasure_reference
from walkthroughs.runtime import metrics
from walkthroughs.wire.schema import Erased

log = logging.getLogger("walkthroughs.erasure")


def audit_state(erased: Erased, now_ns: int) -> None:
    """Count and log an erasure applied to state."""
    metrics.ERASURES.labels("state").inc()
    for kind in ("messages", "walkins", "ghosts"):
        metrics.ERASED_RECORDS.labels(kind).inc(getattr(erased, kind))
    fields = _fields(erased, now_ns) | {
        "messages": erased.messages,
        "walkins": erased.walkins,
        "ghosts": erased.ghosts,
        "tombstones": len(erased.walkin_ids),
    }
    log.info("erasure_state", extra={"fields": fields})


def audit_outputs(erased: Erased, documents: int, tombstones: int, days: int, now_ns: int) -> None:
    """Count and log an erasure carried out in MongoDB and on the output topic."""
    metrics.ERASURES.labels("outputs").inc()
    metrics.ERASED_RECORDS.labels("documents").inc(documents)
    metrics.ERASED_RECORDS.labels("tombstones").inc(tombstones + len(erased.walkin_ids))
    fields = _fields(erased, now_ns) | {
        "documents": documents,
        "tombstones": tombstones,
        "days_recounted": days,
    }
    log.info("erasure_outputs", extra={"fields": fields})


def _fields(erased: Erased, now_ns: int) -> dict[str, object]:
    delay = (now_ns - erased.requested_at_ns) / 1e6 if erased.requested_at_ns else None
    return {
        "reference": erasure_reference(erased.business_id, erased.customer_id),
        "since_request_ms": None if delay is None else round(delay, 1),
    }
