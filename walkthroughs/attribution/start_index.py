"""Walk-ins (or ghosts) by start time, that find the ones a new message beats without the rest.

A message sent at ``s`` credits the walk-ins started in ``[s, s + window)``, but it changes only
those whose attribution it beats. In a hot key most of that range may credit a later message
already, one that was let go since (a backfill of old messages into a key with thousands of
walk-ins): visiting them all cost O(m) per message, and a sorted list of starts cannot skip them,
because they sit among the ones the message does improve.

So each entry carries its attribution key, entries are kept in sorted chunks (as
``sortedcontainers`` does), and a segment tree holds the smallest key of each chunk. A query
descends only into chunks holding a key it beats: O((r + 1) log m) for r entries found, however
many others the range holds. Chunks split at ``SPLIT`` entries; the tree is rebuilt when the
number of chunks changes, once every ``SPLIT / 2`` insertions at most.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import Final

from walkthroughs.attribution.records import AttributionKey

Entry = tuple[int, str]
"""(started_at_ns, id): a walk-in's or a ghost's place in the index."""

Key = tuple[float | str, ...]
"""An attribution key as the index compares it: ``NO_KEY`` stands for none."""

NO_KEY: Final[Key] = (float("-inf"),)  # below every key: any message beats "none yet"
_TOP: Final[Key] = (float("inf"),)  # above every key: an empty slot of the tree
SPLIT: Final = 256


def index_key(key: AttributionKey | None) -> Key:
    """The form of an attribution key the index compares (None is below every key)."""
    return NO_KEY if key is None else key


class StartIndex:
    """Entries sorted by (started_at, id), each with a key, answering "which beat this key"."""

    __slots__ = ("_chunks", "_firsts", "_keys", "_leaves", "_tree")

    def __init__(self, items: Iterable[tuple[Entry, AttributionKey | None]] = ()) -> None:
        pairs = sorted((entry, index_key(key)) for entry, key in items)
        half = SPLIT // 2
        self._chunks: list[list[Entry]] = [
            [entry for entry, _ in pairs[i : i + half]] for i in range(0, len(pairs), half)
        ]
        self._keys: list[list[Key]] = [
            [key for _, key in pairs[i : i + half]] for i in range(0, len(pairs), half)
        ]
        self._firsts: list[Entry] = [chunk[0] for chunk in self._chunks]
        self._leaves = 1
        self._tree: list[Key] = []
        self._rebuild()

    def copy(self) -> StartIndex:
        """An independent copy (O(m))."""
        other = StartIndex.__new__(StartIndex)
        other._chunks = [list(chunk) for chunk in self._chunks]
        other._keys = [list(keys) for keys in self._keys]
        other._firsts = list(self._firsts)
        other._leaves = self._leaves
        other._tree = list(self._tree)
        return other

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self._chunks)

    def __iter__(self) -> Iterator[tuple[Entry, Key]]:
        for chunk, keys in zip(self._chunks, self._keys, strict=True):
            yield from zip(chunk, keys, strict=True)

    def add(self, entry: Entry, key: AttributionKey | None) -> None:
        """Insert a new entry (an entry is unique: its id is)."""
        if not self._chunks:
            self._chunks.append([entry])
            self._keys.append([index_key(key)])
            self._firsts.append(entry)
            self._rebuild()
            return
        i = max(bisect_right(self._firsts, entry) - 1, 0)
        chunk = self._chunks[i]
        at = bisect_left(chunk, entry)
        chunk.insert(at, entry)
        self._keys[i].insert(at, index_key(key))
        if at == 0:
            self._firsts[i] = entry
        if len(chunk) < SPLIT:
            self._refresh(i)
            return
        half = SPLIT // 2
        self._chunks[i : i + 1] = [chunk[:half], chunk[half:]]
        keys = self._keys[i]
        self._keys[i : i + 1] = [keys[:half], keys[half:]]
        self._firsts.insert(i + 1, chunk[half])
        self._rebuild()

    def remove(self, entry: Entry) -> None:
        """Remove an entry held; KeyError when it is not."""
        i = max(bisect_right(self._firsts, entry) - 1, 0)
        chunk = self._chunks[i] if self._chunks else []
        at = bisect_left(chunk, entry)
        if at == len(chunk) or chunk[at] != entry:
            raise KeyError(entry)
        del chunk[at]
        del self._keys[i][at]
        if chunk:
            self._firsts[i] = chunk[0]
            self._refresh(i)
            return
        del self._chunks[i], self._keys[i], self._firsts[i]
        self._rebuild()

    def raise_below(self, start: int, end: int, key: AttributionKey) -> list[str]:
        """Give ``key`` to the entries started in ``[start, end)`` whose key is below it.

        Returns their ids, in start order: the walk-ins a message with that key improves.
        """
        found: list[str] = []
        for i, lo, hi in self._chunks_below(start, end, key):
            chunk, keys = self._chunks[i], self._keys[i]
            for at in range(lo, hi):
                if keys[at] < key:
                    keys[at] = key
                    found.append(chunk[at][1])
            self._refresh(i)
        return found

    def ids_below(self, start: int, end: int, key: AttributionKey, limit: int) -> list[str]:
        """Ids of up to ``limit`` entries started in ``[start, end)`` whose key is below ``key``."""
        found: list[str] = []
        for i, lo, hi in self._chunks_below(start, end, key):
            chunk, keys = self._chunks[i], self._keys[i]
            for at in range(lo, hi):
                if keys[at] < key:
                    found.append(chunk[at][1])
                    if len(found) == limit:
                        return found
        return found

    def _chunks_below(self, start: int, end: int, key: Key) -> list[tuple[int, int, int]]:
        """(chunk, first, past-last position) of the chunks in range holding a key below ``key``."""
        firsts = self._firsts
        if not firsts or start >= end:
            return []
        first = max(bisect_right(firsts, (start,)) - 1, 0)
        last = bisect_left(firsts, (end,)) - 1
        tree, leaves = self._tree, self._leaves
        found: list[tuple[int, int, int]] = []
        stack = [(1, 0, leaves)]
        while stack:
            node, lo, hi = stack.pop()
            if hi <= first or lo > last or not tree[node] < key:
                continue
            if hi - lo > 1:
                mid = (lo + hi) // 2
                stack.append((2 * node + 1, mid, hi))
                stack.append((2 * node, lo, mid))
                continue
            chunk = self._chunks[lo]
            begin = bisect_left(chunk, (start,)) if lo == first else 0
            stop = bisect_left(chunk, (end,)) if lo == last else len(chunk)
            if begin < stop:
                found.append((lo, begin, stop))
        return found

    def _refresh(self, i: int) -> None:
        """Recompute chunk ``i``'s smallest key and its ancestors' in the tree."""
        tree = self._tree
        node = self._leaves + i
        tree[node] = min(self._keys[i])
        node //= 2
        while node:
            smallest = min(tree[2 * node], tree[2 * node + 1])
            if tree[node] == smallest:
                return  # the ancestors above hold the same minimum already
            tree[node] = smallest
            node //= 2

    def _rebuild(self) -> None:
        """Build the tree anew over the current chunks."""
        leaves = 1
        while leaves < len(self._keys):
            leaves *= 2
        tree = [_TOP] * (2 * leaves)
        for i, keys in enumerate(self._keys):
            tree[leaves + i] = min(keys)
        for node in range(leaves - 1, 0, -1):
            tree[node] = min(tree[2 * node], tree[2 * node + 1])
        self._leaves, self._tree = leaves, tree
