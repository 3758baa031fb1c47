"""Parcels: what one step hands the next for one destination, as one item (no I/O).

The dataflow moves batches, not events: Bytewax pays for every item it moves (a Python call
per step, a key extracted, a pickle when the item crosses to another process), so each step
groups what goes to one destination (a state route, a sink partition) into one parcel, and the
cost is paid per parcel. A parcel is a ``list`` whose class says what it holds, so a branch
tells parcels apart without looking inside.

Parcels that cross between processes pickle as plain rows: a named tuple pickles as a reference
to its class and unpickles through its Python-level ``__new__``, about four times the cost of a
plain tuple (bench/README.md, session 12). ``Events`` and ``Documents`` reduce to rows of plain
tuples and rebuild their records with ``tuple.__new__`` (a C call) on the other side.

They are pickled once, however often they are asked: Timely (under Bytewax 0.21) serializes
what crosses twice, once to size it (``bincode::serialized_size``) and once to write it, and
Bytewax pickles an item in each. So a crossing parcel keeps its pickled rows (``_Crossing``),
and the second pass copies bytes. A parcel is not changed once a step has handed it on.
"""

from __future__ import annotations

import pickle
from typing import Any, Self

from walkthroughs.wire.schema import (
    ErasureRequest,
    ErasureWithdrawn,
    MessageEvent,
    Origin,
    ReusedWalkIn,
    WalkInEvent,
    built_from_fields,
    new_origin,
    new_walkthrough,
)

_EVENT_CLASSES = (MessageEvent, WalkInEvent, ReusedWalkIn, ErasureRequest, ErasureWithdrawn)
_EVENT_CODE = {cls: code for code, cls in enumerate(_EVENT_CLASSES)}
_NEW_EVENT = tuple(built_from_fields(cls) for cls in _EVENT_CLASSES)
_EVENT_AT = 1 + len(Origin._fields)  # where an event's own fields start in its row


class Parcel(list[Any]):
    """Records for one destination; the subclass says which kind (see the module doc)."""

    __slots__ = ()


class _Crossing(Parcel):
    """A parcel that crosses to other processes: its rows are pickled once (see the module doc).

    A parcel must not change once a step has handed it on (none does). The cache is checked
    against the length, which catches an append, not a replacement in place.
    """

    __slots__ = ("_wire",)

    def __reduce__(self) -> tuple[Any, ...]:
        wire: tuple[int, bytes] | None = getattr(self, "_wire", None)
        if wire is None or wire[0] != len(self):
            wire = self._wire = (len(self), pickle.dumps(self._rows(), pickle.HIGHEST_PROTOCOL))
        return _rebuild, (self.__class__, wire[1])

    def _rows(self) -> list[tuple[Any, ...]]:
        """The parcel as plain tuples."""
        raise NotImplementedError

    @classmethod
    def _from_rows(cls, rows: list[tuple[Any, ...]]) -> Self:
        """The parcel ``_rows`` gave."""
        raise NotImplementedError


def _rebuild(cls: type[_Crossing], wire: bytes) -> _Crossing:
    return cls._from_rows(pickle.loads(wire))


class Events(_Crossing):
    """``(event, origin)`` pairs for the customers of one state route.

    The origin (the record's bytes) goes along: an event may still turn out to be a dead letter
    where it lands (late, or a reused walk-in id), and a dead letter carries the original.
    """

    __slots__ = ()

    def _rows(self) -> list[tuple[Any, ...]]:
        code = _EVENT_CODE  # one flat row per event: its kind, its origin's 6 fields, its own
        return [(code[e.__class__], *o, *e) for e, o in self]

    @classmethod
    def _from_rows(cls, rows: list[tuple[Any, ...]]) -> Self:
        new = _NEW_EVENT
        return cls([(new[row[0]](row[_EVENT_AT:]), new_origin(row[1:_EVENT_AT])) for row in rows])


class Walkins(Events):
    """Walk-ins for one route of the walk-in id registry (``claims``)."""

    __slots__ = ()


class Bundle(Parcel):
    """``(route, Events)`` pairs for routes that one worker holds.

    The walk-ins a claim route sends on: one item per worker instead of one per route
    (``flow.Cluster``).
    """

    __slots__ = ()


class DeadLetters(Parcel):
    """``DeadLetter``s, written where they were made (the DLQ sink does not route)."""

    __slots__ = ()


class Decisions(Parcel):
    """``Attributed`` walkthroughs of one state route, for the output topic."""

    __slots__ = ()


class Erasures(Parcel):
    """``Erased`` reports of one state route: what the sinks still have to remove."""

    __slots__ = ()


class Tombstones(Parcel):
    """``Tombstone``s for the output topic."""

    __slots__ = ()


class Documents(_Crossing):
    """``Walkthrough``s for one MongoDB sink partition (they cross to its worker)."""

    __slots__ = ()

    def _rows(self) -> list[tuple[Any, ...]]:
        return [tuple(w) for w in self]

    @classmethod
    def _from_rows(cls, rows: list[tuple[Any, ...]]) -> Self:
        return cls([new_walkthrough(row) for row in rows])
