"""One copy of each string that repeats across retained events (no I/O, no Bytewax).

Used by decode, for every event, and by the attribution state when it is restored from a
snapshot: a snapshot is per shard, so unpickling would otherwise make one copy per shard.
"""

from __future__ import annotations

_SHARED: dict[str, str] = {}
_SHARED_MAX = 200_000


def shared(value: str) -> str:
    """Return one shared copy of a string that repeats across events.

    Business ids, campaigns, locations and dates repeat across millions of retained events;
    sharing one copy of each saves tens of bytes per event. Bounded (unlike ``sys.intern``,
    whose strings are immortal on newer Pythons): the pool starts over when it is full.
    """
    found = _SHARED.get(value)
    if found is not None:
        return found
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[value] = value
    return value
