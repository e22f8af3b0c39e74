"""Windowed top-N (recon's `proc_window`): who did the most work, or grew their mailbox
most, between two samples.

Examples:
    >>> top = await observe.proc_window("work", 5, 1.0)   # the 5 busiest of the last second
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beamlet._core import BadArgument, Node, Pid, sleep
from beamlet.observe.info import live_procs, node_of

__all__ = ["ATTRIBUTES", "Sample", "WindowRow", "proc_count", "proc_window", "sample", "top_diff"]

ATTRIBUTES = ("work", "message_queue_len", "memory")


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One row of a top-N: `value` is the attribute (or its change over the window),
    `label` the registered name or initial call."""

    pid: Pid
    value: int
    label: str


Sample = dict[Pid, tuple[tuple[int, int], str]]  # pid -> ((work, queue length), label)


def sample(node: Node | None = None) -> Sample:
    """One cheap sample of every live process: work count, queue length, label."""
    n = node_of(node)
    out: Sample = {}
    for p in live_procs(n):
        label = str(p.name) if p.name is not None else _label(p.fn)
        out[p.pid] = ((p.taken, p.message_queue_len), label)
    return out


def _label(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _check(attr: str, n: int) -> int:
    if attr not in ("work", "message_queue_len"):
        raise BadArgument(f"attribute must be 'work' or 'message_queue_len', not {attr!r}")
    if type(n) is not int or n < 0:
        raise BadArgument(f"n must be an int >= 0, not {n!r}")
    return 0 if attr == "work" else 1


def top_diff(before: Sample, after: Sample, attr: str, n: int) -> list[WindowRow]:
    """The `n` processes whose `attr` grew most from `before` to `after` (processes
    born during the window count from zero; those that died are left out)."""
    i = _check(attr, n)
    rows = []
    for pid, cur in after.items():
        prev = before.get(pid)
        rows.append(WindowRow(pid, cur[0][i] - (prev[0][i] if prev is not None else 0), cur[1]))
    rows.sort(key=lambda r: r.value, reverse=True)
    return rows[:n]


def proc_count(attr: str, n: int, node: Node | None = None) -> list[WindowRow]:
    """The `n` processes with the largest `attr` now (recon's `proc_count`)."""
    i = _check(attr, n)
    s = sample(node)
    rows = [WindowRow(pid, v[0][i], v[1]) for pid, v in s.items()]
    rows.sort(key=lambda r: r.value, reverse=True)
    return rows[:n]


async def proc_window(attr: str, n: int, seconds: float) -> list[WindowRow]:
    """Sample, sleep `seconds` (the caller's mailbox is untouched), sample again: the
    `n` processes whose `attr` grew most in between. Call it from a process.

    Examples:
        >>> await observe.proc_window("message_queue_len", 3, 0.5)
        [WindowRow(pid=<0.7.0>, value=5000, label='flood')]
    """
    _check(attr, n)
    before = sample()
    await sleep(seconds)
    return top_diff(before, sample(), attr, n)
