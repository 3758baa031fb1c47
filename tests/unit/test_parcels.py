"""Parcels cross between processes as plain rows and arrive as the records they left as."""

from __future__ import annotations

import pickle

import pytest

from walkthroughs.dataflow.parcels import Decisions, Documents, Events, Walkins
from walkthroughs.wire.schema import (
    ErasureRequest,
    ErasureWithdrawn,
    MessageEvent,
    Origin,
    ReusedWalkIn,
    WalkInEvent,
    Walkthrough,
)

ORIGIN = Origin("walkins", 3, 17, b"k", b"\x0a\x01w", [("redriven", b"1")])
EVENTS = [
    (MessageEvent("m", "b", "c", 5, 1, ""), Origin("zr-messages", 0, 1, None, b"x")),
    (WalkInEvent("w", "b", "c", "loc", 7, "2026-12-05"), ORIGIN),
    (ReusedWalkIn("w", "b2", "c", "", 7, "2026-12-05"), ORIGIN),
    (ErasureRequest("b", "c", 9), Origin("erasures", 0, 2, b"[]", b"{}")),
    (ErasureWithdrawn("b", "c", 0), Origin("erasures", 0, 3, b"[]", None)),
]


def test_events_keep_their_kinds_and_fields_across_a_pickle() -> None:
    for cls in (Events, Walkins):
        back = pickle.loads(pickle.dumps(cls(EVENTS), protocol=pickle.HIGHEST_PROTOCOL))
        assert back.__class__ is cls
        assert back == EVENTS
        assert [(e.__class__, o.__class__) for e, o in back] == [
            (e.__class__, Origin) for e, _ in EVENTS
        ]
        assert back[1][1].headers == [("redriven", b"1")]


def test_documents_arrive_as_walkthroughs_and_other_parcels_as_they_are() -> None:
    w = Walkthrough("w", "b", "c", "", 7, "m", 1, "", 5, "2026-12-05")
    back = pickle.loads(pickle.dumps(Documents([w, w._replace(walkin_id="w2")])))
    assert back.__class__ is Documents
    assert back == [w, w._replace(walkin_id="w2")]
    assert {d.__class__ for d in back} == {Walkthrough}
    decisions = pickle.loads(pickle.dumps(Decisions([1, 2])))
    assert (decisions.__class__, decisions) == (Decisions, [1, 2])


def test_a_parcel_is_pickled_once_however_often_it_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timely sizes what crosses with one serialization, then writes it with another."""
    parcel = Events(EVENTS)
    rows_made = 0
    make_rows = Events._rows

    def counted(self: Events) -> list[tuple[object, ...]]:
        nonlocal rows_made
        rows_made += 1
        return make_rows(self)

    monkeypatch.setattr(Events, "_rows", counted)
    sized = pickle.dumps(parcel)
    written = pickle.dumps(parcel)
    assert rows_made == 1
    assert sized == written
    parcel.append(EVENTS[0])  # no step does this; if one did, the copy is not stale
    assert pickle.loads(pickle.dumps(parcel)) == [*EVENTS, EVENTS[0]]
    assert rows_made == 2
