"""The sorted key index of an `ordered_set` (docs/ets.md, "Speed").

`sortedcontainers.SortedList` when the optional extra is installed (`beamlet[ets]`):
insert and delete stay O(log n) in practice at any size. Otherwise a plain list kept
sorted with `bisect`: lookups and steps are O(log n) too, but an insert or delete moves
the tail of the list (a fast `memmove`, still O(n)), which the benchmark shows is fine up
to a few hundred thousand keys (bench/bench_ets.py).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any

__all__ = ["ListKeys", "SortedKeys", "new_keys"]


class ListKeys(list[Any]):
    """A list kept sorted, with SortedList's method names."""

    __slots__ = ()

    def add(self, key: Any) -> None:
        insort(self, key)

    def remove(self, key: Any) -> None:
        del self[bisect_left(self, key)]

    def bisect_left(self, key: Any) -> int:
        return bisect_left(self, key)

    def bisect_right(self, key: Any) -> int:
        return bisect_right(self, key)


try:  # optional: pip install beamlet[ets]
    from sortedcontainers import SortedList as SortedKeys  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the environment
    SortedKeys = ListKeys


def new_keys() -> Any:
    """An empty index: SortedList if available, else ListKeys."""
    return SortedKeys()
