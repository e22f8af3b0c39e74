"""Windowed top-N (recon's `proc_window`): who did the most work, or grew their mailbox
most, between two samples.

Examples:
    >>> from beamlet import observe
    >>> before = observe.sample()
    >>> pid = beamlet.spawn(beamlet.receive, "never")
    >>> for i in range(5):
    ...     beamlet.send(pid, i)
    >>> [(row.pid == pid, row.value) for row in observe.top_diff(before, observe.sample(),
    ...                                                          "message_queue_len", 1)]
    [(True, 5)]
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
    `label` the registered name or initial call.

    Examples:
        >>> from beamlet import observe
        >>> beamlet.register("idle", beamlet.spawn(beamlet.receive))
        >>> beamlet.send("idle", "hello")
        >>> observe.proc_count("message_queue_len", 1)[0].label
        'idle'
    """

    pid: Pid
    value: int
    label: str


Sample = dict[Pid, tuple[tuple[int, int], str]]  # pid -> ((work, queue length), label)


def sample(node: Node | None = None) -> Sample:
    """One cheap sample of every live process: work count, queue length, label.

    Examples:
        >>> from beamlet import observe
        >>> s = observe.sample()
        >>> s[beamlet.self()][0]   # (work, queue length)
        (0, 0)
    """
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
    born during the window count from zero; those that died are left out).

    Examples:
        >>> from beamlet import observe
        >>> async def worker():
        ...     while True:
        ...         await beamlet.receive()
        >>> w = beamlet.spawn(worker)
        >>> before = observe.sample()
        >>> for i in range(4):
        ...     beamlet.send(w, i)
        >>> await beamlet.sleep(0)
        >>> [(row.pid == w, row.value) for row in observe.top_diff(before, observe.sample(),
        ...                                                        "work", 1)]
        [(True, 4)]
    """
    i = _check(attr, n)
    rows = []
    for pid, cur in after.items():
        prev = before.get(pid)
        rows.append(WindowRow(pid, cur[0][i] - (prev[0][i] if prev is not None else 0), cur[1]))
    rows.sort(key=lambda r: r.value, reverse=True)
    return rows[:n]


def proc_count(attr: str, n: int, node: Node | None = None) -> list[WindowRow]:
    """The `n` processes with the largest `attr` now (recon's `proc_count`).

    Examples:
        >>> from beamlet import observe
        >>> pid = beamlet.spawn(beamlet.receive, "never")
        >>> for i in range(3):
        ...     beamlet.send(pid, i)
        >>> [(row.pid == pid, row.value) for row in observe.proc_count("message_queue_len", 1)]
        [(True, 3)]
        >>> observe.proc_count("colour", 1)
        Traceback (most recent call last):
        ...
        beamlet.BadArgument: attribute must be 'work' or 'message_queue_len', not 'colour'
    """
    i = _check(attr, n)
    s = sample(node)
    rows = [WindowRow(pid, v[0][i], v[1]) for pid, v in s.items()]
    rows.sort(key=lambda r: r.value, reverse=True)
    return rows[:n]


async def proc_window(attr: str, n: int, seconds: float) -> list[WindowRow]:
    """Sample, sleep `seconds` (the caller's mailbox is untouched), sample again: the
    `n` processes whose `attr` grew most in between. Call it from a process.

    Examples:
        >>> from beamlet import observe
        >>> async def flood(to):
        ...     for i in range(50):
        ...         beamlet.send(to, i)
        ...         await beamlet.sleep(0.001)
        >>> sink = beamlet.spawn(beamlet.receive, "never")
        >>> beamlet.register("sink", sink)
        >>> _ = beamlet.spawn(flood, sink)
        >>> [(row.label, row.value > 0) for row in await observe.proc_window(
        ...     "message_queue_len", 1, 0.02)]
        [('sink', True)]
    """
    _check(attr, n)
    before = sample()
    await sleep(seconds)
    return top_diff(before, sample(), attr, n)
