"""Warns when one process holds the event loop too long (cooperative scheduling).

A thread samples the scheduler every `threshold / 2` seconds. If the same step of the
same process is still running on two samples `threshold` apart, that process has
blocked every other process, timer and connection of the node: it is logged once per
stall, by pid and function. The hot path pays only for setting `node.running`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("beamlet")


class Watchdog:
    def __init__(self, node: Any, threshold: float) -> None:
        self.node = node
        self.threshold = threshold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beamlet-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        node = self.node
        seen: tuple[Any, int, int] | None = None
        since = 0.0
        reported: tuple[Any, int, int] | None = None
        while not self._stop.wait(self.threshold / 2):
            p = node.running
            now = time.monotonic()
            # The same process in the same batch of steps, with no message taken: one
            # step is blocking (a batch of short steps ends in milliseconds).
            key = (p, node._batch, p.taken) if p is not None else None
            if key is None or key != seen:
                seen, since = key, now
                continue
            blocked = now - since + self.threshold / 2
            if blocked >= self.threshold and reported != key:
                reported = key
                log.warning(
                    "process %r (%s) has blocked the event loop for %.2f s: every other "
                    "process, timer and connection waits. Use `await beamlet.run_in_thread"
                    "(...)` for blocking or CPU-bound work.",
                    p.pid,
                    getattr(p.fn, "__qualname__", p.fn),
                    blocked,
                    extra={"beamlet_pid": p.pid},
                )
