"""Hostile records never escape the decoder as anything but a DecodeError with a reason."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from walkthroughs.testing.hostile import field, hostile_record
from walkthroughs.wire.codec import decode_record
from walkthroughs.wire.schema import DeadLetter, Origin

TOPICS = frozenset({"m"})


@settings(max_examples=3000, deadline=None)
@given(seed=st.integers(0, 2**32), walkin=st.booleans())
def test_hostile_records_decode_or_dead_letter(seed: int, walkin: bool) -> None:
    raw = hostile_record(random.Random(seed), walkin)
    out = decode_record(Origin("w" if walkin else "m", 0, 0, None, raw), TOPICS)
    if isinstance(out, DeadLetter):
        assert out.error.split(" ")[0] in {"undecodable", "missing", "invalid", "id"}
        assert len(out.error) < 400


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 40),
            st.sampled_from([0, 1, 2, 5]),
            st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=50),
        ),
        max_size=12,
    )
)
def test_random_wire_fields_decode_or_dead_letter(
    fields: list[tuple[int, int, int | bytes]],
) -> None:
    raw = b"".join(
        field(n, wt, v if (wt == 2) == isinstance(v, bytes) else (0 if wt != 2 else b""))
        for n, wt, v in fields
    )
    for topic in ("m", "w"):
        decode_record(Origin(topic, 0, 0, None, raw), TOPICS)  # never raises
