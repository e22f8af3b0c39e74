"""A producer's buffer (docs/gen_stage.md G5): events that no consumer has asked for
yet, bounded, plus the markers `sync_info`/`async_info` put behind them (G5.3).

Entries sit in one deque in arrival order; a marker is an `_Info`. `count` counts events
only. With `keep="last"` an overflow drops the oldest entries, and a marker dropped that
way fires (its message is returned) instead of being lost.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

__all__ = ["Buffer"]


class _Info:
    __slots__ = ("msg",)

    def __init__(self, msg: Any) -> None:
        self.msg = msg


class Buffer:
    """Up to `size` events (`math.inf`: unbounded; 0: none are kept).

    Examples:
        >>> from beamlet.gen_stage import Buffer
        >>> b = Buffer(3)
        >>> b.store_temporary([1, 2, 3, 4], "last")
        (1, [])
        >>> b.take(2)
        (0, [2, 3], [])
    """

    __slots__ = ("count", "entries", "size")

    def __init__(self, size: float) -> None:
        self.size = size
        self.entries: deque[Any] = deque()
        self.count = 0

    def estimate_size(self) -> int:
        """Events in the buffer (markers excluded, G5.4)."""
        return self.count

    def store_temporary(self, events: list[Any], keep: str) -> tuple[int, list[Any]]:
        """Add events; returns (how many were discarded, markers that fired)."""
        entries = self.entries
        room = self.size - self.count
        n = len(events)
        if n <= room:
            entries.extend(events)
            self.count += n
            return 0, []
        if keep == "first":
            take = int(room) if room > 0 else 0
            if take:
                entries.extend(events[:take])
                self.count += take
            return n - take, []
        # keep last: the newest `size` events stay, older entries go
        fired: list[Any] = []
        excess = 0
        size = int(self.size) if self.size != math.inf else 0
        if n >= size:  # everything already buffered goes, and the head of `events`
            for e in entries:
                if type(e) is _Info:
                    fired.append(e.msg)
                else:
                    excess += 1
            entries.clear()
            excess += n - size
            entries.extend(events[n - size :] if size else ())
            self.count = size
            return excess, fired
        entries.extend(events)
        self.count += n
        while self.count > size:
            e = entries.popleft()
            if type(e) is _Info:
                fired.append(e.msg)
            else:
                self.count -= 1
                excess += 1
        while entries and type(entries[0]) is _Info:  # a marker now at the head fires
            fired.append(entries.popleft().msg)
        return excess, fired

    def store_permanent_unless_empty(self, msg: Any) -> bool:
        """Queue a marker behind the buffered events; False (nothing stored) if there
        are none, so the caller delivers it at once."""
        if self.count == 0:
            return False
        self.entries.append(_Info(msg))
        return True

    def take(self, counter: int) -> tuple[int, list[Any], list[Any]] | None:
        """Take up to `counter` events in order, stopping after an event that has
        markers behind it. Returns (counter left, events, markers' messages), or None
        if nothing can be taken."""
        if self.count == 0 or counter == 0:
            return None
        entries = self.entries
        infos: list[Any] = []
        if counter >= self.count and not self._has_markers():
            temps = list(entries)
            entries.clear()
            left = counter - self.count
            self.count = 0
            return left, temps, infos
        temps = []
        popleft = entries.popleft
        while counter > 0 and self.count > 0:
            e = popleft()
            temps.append(e)
            counter -= 1
            self.count -= 1
            if entries and type(entries[0]) is _Info:
                while entries and type(entries[0]) is _Info:
                    infos.append(popleft().msg)
                break
        return counter, temps, infos

    def _has_markers(self) -> bool:
        return len(self.entries) != self.count
