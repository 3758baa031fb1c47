"""Every process-wide cache of the service, with one bounded policy and one reset (no I/O).

A long-running worker sees an unbounded stream of ids, zones and minutes: a cache that only
grows is a slow memory leak. Each cache here holds at most its ``limit`` entries and starts over
when full. Starting over keeps every lookup O(1) and costs one miss per live entry afterwards,
which is cheaper than LRU bookkeeping on the hot path (an ``lru_cache`` hit takes a lock and
relinks a list node). Values are pure functions of their keys, so dropping them is always safe.

``reset()`` empties them all: tests that count memory or misses start from a known state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_ALL: list[BoundedCache[object, object]] = []


class BoundedCache(dict[K, V], Generic[K, V]):
    """A dict of at most ``limit`` entries that empties itself when full (see the module doc).

    A dict subclass, so a hit is one C-level ``get``; ``put`` is called on misses only.
    """

    __slots__ = ("limit", "name")

    def __init__(self, name: str, limit: int) -> None:
        super().__init__()
        self.name = name
        self.limit = limit
        _ALL.append(self)  # type: ignore[arg-type]  # invariance: held only to clear them

    def put(self, key: K, value: V) -> V:
        """Store ``value`` for ``key`` (starting over if full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


def memoize(name: str, limit: int) -> Callable[[Callable[[K], V]], Callable[[K], V]]:
    """Cache a one-argument pure function in a ``BoundedCache`` (the arguments must hash)."""

    def wrap(function: Callable[[K], V]) -> Callable[[K], V]:
        cache: BoundedCache[K, V] = BoundedCache(name, limit)
        get, put = cache.get, cache.put

        def cached(key: K) -> V:
            found = get(key)
            return put(key, function(key)) if found is None else found

        cached.__doc__ = function.__doc__
        cached.__name__ = function.__name__
        cached.cache = cache  # type: ignore[attr-defined]  # for tests and tools
        return cached

    return wrap


def reset() -> None:
    """Empty every cache of the process."""
    for cache in _ALL:
        cache.clear()


def sizes() -> dict[str, int]:
    """The number of entries of each cache, by name (tests, and to see what a worker holds)."""
    return {cache.name: len(cache) for cache in _ALL}
