"""Sampled call latency: one `GenServer.call` in N timed, as a telemetry event.

`sample_calls(every)` installs a probe in the node's call path (`Node.call_probe`): every
`every`-th call between two processes of the node is timed on the node's loop clock
(virtual time under `beamlet.testing`), from the request's send to the reply (or the
timeout, or the server's death), and emitted in the caller as the telemetry event
`("beamlet", "call", "sampled")` with measurement `duration` (seconds) and metadata
`caller`, `server` (pids), `outcome` (`"ok"`, `"timeout"`, `"exit"`) and `every`. The
Prometheus exporter turns it into the histogram `beamlet_call_duration_seconds`.

Without a probe a call pays one attribute test; with one, every call pays a countdown
and a sampled call a clock read and the handlers. Calls the fused path leaves to the
general protocol (to another node, by `Via`, or with an int timeout) are not sampled.

Examples:
    >>> from beamlet.observe import calls
    >>> sampler = calls.sample_calls(every=1)
    >>> sampler.every
    1
    >>> calls.stop_sampling_calls()
    True
"""

from __future__ import annotations

import time
from typing import Any, Final

from beamlet._core import BadArgument, Node
from beamlet.observe import telemetry
from beamlet.observe.info import node_of

__all__ = ["EVENT", "CallSampler", "sample_calls", "sampler", "stop_sampling_calls"]

EVENT: Final = ("beamlet", "call", "sampled")
MAX_EVERY: Final = 1 << 30


class CallSampler:
    """The probe `sample_calls` installs: times one call in `every` (the kernel's
    `CallProbe`). `sampled` counts the calls it timed.

    Examples:
        >>> from beamlet.observe import calls
        >>> s = calls.sample_calls(every=10)
        >>> (s.every, s.sampled)
        (10, 0)
        >>> _ = calls.stop_sampling_calls()
    """

    __slots__ = ("_clock", "_left", "every", "node", "sampled")

    def __init__(self, node: Node, every: int) -> None:
        self.node = node
        self.every = every
        self.sampled = 0
        self._left = every
        self._clock = node.loop.time

    def start(self) -> float | None:
        left = self._left - 1
        if left:
            self._left = left
            return None
        self._left = self.every
        return self._clock()

    def stop(self, start: float, caller: Any, server: Any, outcome: str) -> None:
        self.sampled += 1
        duration = max(0.0, self._clock() - start)
        md = {"caller": caller.pid, "server": server.pid, "outcome": outcome, "every": self.every}
        try:
            m = {"duration": duration, "monotonic_time": time.monotonic()}
            telemetry.execute(EVENT, m, md, node=self.node)
        except Exception:  # the kernel's call path must not fail for an observer
            pass


def sample_calls(every: int = 100, *, node: Node | None = None) -> CallSampler:
    """Time one call in `every` on the node (1: all of them) and emit each as the
    event `("beamlet", "call", "sampled")`. Replaces the node's sampler if it has one
    (so the smallest `every` its users asked for is theirs to choose); returns it.

    Examples:
        >>> from beamlet import GenServer, Reply
        >>> from beamlet.observe import calls, telemetry
        >>> class Echo(GenServer):
        ...     async def init(self, arg):
        ...         return arg
        ...     async def handle_call(self, request, from_, state):
        ...         return Reply(request, state)
        >>> seen = []
        >>> telemetry.attach("durations", calls.EVENT,
        ...                  lambda event, m, md, config: seen.append(md["outcome"]))
        >>> sampler = calls.sample_calls(every=2)
        >>> pid = await Echo.start_link(None)
        >>> for i in range(6):
        ...     _ = await GenServer.call(pid, i)
        >>> seen, sampler.sampled
        (['ok', 'ok', 'ok'], 3)
        >>> _ = calls.stop_sampling_calls()
    """
    n = node_of(node)
    if not n.started:
        raise BadArgument(f"{n.name} is not started: sample its calls once it runs")
    probe = CallSampler(n, check_every(every))
    n.call_probe = probe
    return probe


def check_every(every: Any, what: str = "every") -> int:
    """`every` if it is a sampling period (an int in 1..MAX_EVERY), else BadArgument."""
    if type(every) is not int or not 1 <= every <= MAX_EVERY:
        raise BadArgument(f"{what} must be an int in 1..{MAX_EVERY}, not {every!r}")
    return every


def sampler(node: Node | None = None) -> CallSampler | None:
    """The node's call sampler, or None.

    Examples:
        >>> from beamlet.observe import calls
        >>> calls.sampler() is None
        True
    """
    probe = node_of(node).call_probe
    return probe if isinstance(probe, CallSampler) else None


def stop_sampling_calls(*, node: Node | None = None) -> bool:
    """Remove the node's call sampler (calls are then untimed); False if it had none.

    Examples:
        >>> from beamlet.observe import calls
        >>> calls.stop_sampling_calls()
        False
    """
    n = node_of(node)
    if n.call_probe is None:
        return False
    n.call_probe = None
    return True
