"""The layouts of what a customer's state retains: the only module that knows their fields' order.

Records are plain tuples: the smallest Python records, and pickled entirely in C (a NamedTuple
or an object with slots costs a Python call per record at every snapshot, and a large state
holds millions of them). The ``M_``/``W_``/``G_`` constants name their fields; the functions
below build and update them, so the rule never writes a layout out by hand.

Times are stored as facts (when an event was sent, started, read, let go), never as deadlines:
deadlines follow from them with the running process's ``Rules``.
"""

from __future__ import annotations

from typing import Final

from walkthroughs.wire.schema import MessageEvent, WalkInEvent

# A retained message: (sent_at_ns, message_id, channel, campaign_id, read_at_ns). Tuples sort by
# (sent_at_ns, message_id) first, the rule's order; a message_id is unique within a customer, so
# comparing two stored messages compares those two fields.
StoredMessage = tuple[int, str, int, str, int]
M_SENT: Final = 0
M_ID: Final = 1
M_CHANNEL: Final = 2
M_CAMPAIGN: Final = 3
M_READ: Final = 4

AttributionKey = tuple[int, str]
"""(sent_at_ns, message_id): what decides between two messages that both credit a walk-in."""

# A retained walk-in: (walkin_id, started_at_ns, location_id, local_date, best, read_at_ns,
# decided). ``best`` is the stored message it credits so far (None: none yet).
WalkIn = tuple[str, int, str, str, StoredMessage | None, int, bool]
W_ID: Final = 0
W_STARTED: Final = 1
W_LOCATION: Final = 2
W_DATE: Final = 3
W_BEST: Final = 4
W_READ: Final = 5
W_DECIDED: Final = 6

# The trace of a walk-in let go: (walkin_id, started_at_ns, its attribution key or None, the
# walk-in's read_at_ns).
Ghost = tuple[str, int, AttributionKey | None, int]
G_ID: Final = 0
G_STARTED: Final = 1
G_KEY: Final = 2
G_READ: Final = 3


def stored_message(event: MessageEvent, read_at_ns: int) -> StoredMessage:
    """The record of a message read at ``read_at_ns``."""
    return (event.sent_at_ns, event.message_id, event.channel, event.campaign_id, read_at_ns)


def attribution_key(message: StoredMessage | None) -> AttributionKey | None:
    """The (sent_at, message_id) of a stored message, None for none."""
    return None if message is None else (message[M_SENT], message[M_ID])


def new_walkin(event: WalkInEvent, best: StoredMessage | None, read_at_ns: int) -> WalkIn:
    """The record of a walk-in read at ``read_at_ns``, crediting ``best`` so far, undecided."""
    return (
        event.walkin_id,
        event.started_at_ns,
        event.location_id,
        event.local_date,
        best,
        read_at_ns,
        False,
    )


def credited(walkin: WalkIn, message: StoredMessage) -> WalkIn:
    """The walk-in crediting ``message`` instead."""
    return (*walkin[:W_BEST], message, *walkin[W_BEST + 1 :])  # type: ignore[return-value]


def decided(walkin: WalkIn) -> WalkIn:
    """The walk-in with its first decision made."""
    return (*walkin[:W_DECIDED], True)


def ghost_of(walkin: WalkIn) -> Ghost:
    """What is kept of a walk-in once it is let go."""
    return (walkin[W_ID], walkin[W_STARTED], attribution_key(walkin[W_BEST]), walkin[W_READ])
