# Checked by mypy in tests/core/test_spawn_typing.py (not collected by pytest: no test_ prefix).
# A line ending in `# E: <text>` must get a mypy error containing <text>; every other
# line must get none.
from __future__ import annotations

from typing import assert_type

import beamlet
from beamlet import Node, Pid, Ref


async def worker(n: int, name: str) -> int:
    return n


async def no_args() -> None:
    pass


async def main(node: Node) -> None:
    assert_type(beamlet.spawn(worker, 1, "a"), Pid)
    assert_type(beamlet.spawn_link(worker, 1, "a"), Pid)
    assert_type(beamlet.spawn_monitor(worker, 1, "a"), tuple[Pid, Ref])
    assert_type(beamlet.spawn(no_args), Pid)
    assert_type(node.spawn(worker, 1, "a", link=True), Pid)
    assert_type(await node.run(worker, 1, "a"), int)
    assert_type(beamlet.run(worker, 1, "a"), int)
    node.link(beamlet.self(), beamlet.self())
    beamlet.spawn(worker, "1", "a")  # E: incompatible type
    beamlet.spawn(worker, 1)  # E: Argument 1 to "spawn" has incompatible type
    beamlet.spawn_link(worker, 1, "a", 3)  # E: incompatible type
    beamlet.spawn_monitor(no_args, 1)  # E: incompatible type
    node.spawn(worker, 1, 2)  # E: incompatible type
    beamlet.run(worker, 1)  # E: incompatible type
    node.link(beamlet.self(), "x")  # E: incompatible type
