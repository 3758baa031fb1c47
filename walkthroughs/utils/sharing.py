"""One copy of each string that repeats across retained events (no I/O, no Bytewax).

Used by decode, for every event, and by the attribution state when it is restored from a
snapshot: a snapshot is per shard, so unpickling would otherwise make one copy per shard.
"""

from __future__ import annotations

from walkthroughs.utils.caches import BoundedCache

_SHARED: BoundedCache[str, str] = BoundedCache("shared_strings", 200_000)
shared_get = _SHARED.get
"""The shared copy of a string if there is one, else None: ``shared_get(s) or shared(s)`` is
``shared(s)`` with a C call instead of a Python one on a hit (the decoder's hot path)."""


def shared(value: str) -> str:
    """Return one shared copy of a string that repeats across events.

    Business ids, campaigns, locations and dates repeat across millions of retained events;
    sharing one copy of each saves tens of bytes per event. Bounded (unlike ``sys.intern``,
    whose strings are immortal on newer Pythons): see ``walkthroughs.utils.caches``.
    """
    found = _SHARED.get(value)
    return _SHARED.put(value, value) if found is None else found
