"""Process-wide caches: each one bounded, every one registered, all emptied by one reset."""

from __future__ import annotations

from walkthroughs.attribution import customer_hash
from walkthroughs.utils import caches
from walkthroughs.utils.sharing import shared
from walkthroughs.wire.codec import local_date, zone


def test_a_cache_starts_over_when_full_and_keeps_answering() -> None:
    cache: caches.BoundedCache[int, int] = caches.BoundedCache("test_squares", 3)
    for i in range(3):
        cache.put(i, i * i)
    assert len(cache) == 3
    assert cache.put(3, 9) == 9
    assert dict(cache) == {3: 9}  # started over: one miss per live entry afterwards


def test_every_pool_of_the_service_is_registered_and_reset_empties_them_all() -> None:
    shared("business-1")
    customer_hash("business-1", "customer-1")
    local_date(1_900_000_000 * 10**9, "Europe/Paris")
    zone("Europe/Paris")
    names = {"shared_strings", "business_crc", "local_dates", "zones"}
    sizes = caches.sizes()
    assert names <= set(sizes)
    assert all(sizes[name] > 0 for name in names)
    caches.reset()
    assert all(size == 0 for size in caches.sizes().values())
    assert local_date(1_900_000_000 * 10**9, "Europe/Paris") == "2030-03-17"  # recomputed


def test_memoize_caches_by_argument_within_its_bound() -> None:
    calls: list[str] = []

    @caches.memoize("test_upper", 2)
    def upper(value: str) -> str:
        calls.append(value)
        return value.upper()

    assert [upper("a"), upper("a"), upper("b"), upper("c"), upper("a")] == ["A", "A", "B", "C", "A"]
    assert calls == ["a", "b", "c", "a"]  # "c" filled it: it started over
