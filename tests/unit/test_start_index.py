"""StartIndex against a plain dict: the same answers after any sequence of changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walkthroughs.attribution import start_index
from walkthroughs.attribution.customer import beats
from walkthroughs.attribution.records import AttributionKey
from walkthroughs.attribution.start_index import StartIndex

Model = dict[tuple[int, str], AttributionKey | None]

starts = st.integers(0, 40)
keys = st.none() | st.tuples(st.integers(0, 40), st.sampled_from("abc"))
some_keys = st.tuples(st.integers(0, 40), st.sampled_from("abc"))
OPERATIONS = ("add", "remove", "raise", "find")


def below(model: Model, start: int, end: int, key: AttributionKey) -> list[tuple[int, str]]:
    """The entries in ``[start, end)`` whose key is below ``key``, in start order."""
    return [
        entry for entry in sorted(model) if start <= entry[0] < end and beats(key, model[entry])
    ]


def check_contents(index: StartIndex, model: Model) -> None:
    assert len(index) == len(model)
    assert [entry for entry, _ in index] == sorted(model)
    assert [key for _, key in index] == [
        start_index.index_key(model[entry]) for entry in sorted(model)
    ]
    # The tree holds each chunk's smallest key and each node the smaller of its children's: a
    # stale node would send queries into chunks with nothing to find (O(m) again).
    tree, leaves = index._tree, index._leaves
    assert [tree[leaves + i] for i in range(len(index._keys))] == [min(k) for k in index._keys]
    assert all(tree[node] == min(tree[2 * node], tree[2 * node + 1]) for node in range(1, leaves))


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few entries, so that short sequences split, empty and rebuild the tree."""
    monkeypatch.setattr(start_index, "SPLIT", 4)


@settings(max_examples=300, deadline=None)
@given(initial=st.dictionaries(st.tuples(starts, st.sampled_from("xyz")), keys), data=st.data())
def test_answers_as_a_dict_does(initial: Model, data: st.DataObject) -> None:
    index = StartIndex(initial.items())
    model = dict(initial)
    check_contents(index, model)
    for op in data.draw(st.lists(st.sampled_from(OPERATIONS), max_size=120)):
        if op == "add":
            entry = (data.draw(starts), f"w{data.draw(st.integers(0, 200))}")
            if entry not in model:
                key = data.draw(keys)
                index.add(entry, key)
                model[entry] = key
        elif op == "remove":
            if model:
                entry = data.draw(st.sampled_from(sorted(model)))
                index.remove(entry)
                del model[entry]
            with pytest.raises(KeyError):
                index.remove((-1, "absent"))
        else:
            start, end = data.draw(starts), data.draw(starts)
            key = data.draw(some_keys)
            expected = below(model, start, end, key)
            if op == "raise":
                assert index.raise_below(start, end, key) == [entry[1] for entry in expected]
                model.update(dict.fromkeys(expected, key))
            else:
                limit = data.draw(st.integers(1, 4))
                found = index.ids_below(start, end, key, limit)
                assert found == [entry[1] for entry in expected[:limit]]
        check_contents(index, model)


def test_copy_is_independent() -> None:
    index = StartIndex(((i, f"w{i}"), None) for i in range(20))
    copy = index.copy()
    assert index.raise_below(0, 10, (5, "m")) == [f"w{i}" for i in range(10)]
    index.remove((15, "w15"))
    assert copy.raise_below(0, 20, (1, "m")) == [f"w{i}" for i in range(20)]
    assert len(copy) == 20
    assert len(index) == 19


def test_skips_the_entries_a_key_does_not_beat() -> None:
    """A backfilled message among thousands of walk-ins crediting later messages finds none."""
    index = StartIndex(((i, f"w{i}"), (10**6 + i, "later")) for i in range(10_000))
    index.add((5_000, "old"), (1, "earliest"))
    assert index.raise_below(0, 10_000, (2, "backfill")) == ["old"]
    assert index.ids_below(0, 10_000, (2, "backfill"), 3) == []
