"""The beamlet side of bench/bench_dist.py: one node per OS process, like an erl node.

    python bench/dist_py_peer.py serve  NAME COOKIE EPMD_PORT LOOP
    python bench/dist_py_peer.py client NAME COOKIE EPMD_PORT LOOP PEER N M

`serve` registers `echo` and `sink` (the protocol of bench/dist_beam.erl), prints READY
and runs until its stdin closes. `client` does N ping-pong round trips with
`{echo, PEER}` and sends M one-way messages to `{sink, PEER}`, printing
`RESULT pingpong <µs> <N>` and `RESULT oneway <µs> <M>` like dist_beam:client/3.
LOOP is `asyncio` or `uvloop`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import beamlet
from beamlet import Atom, Node
from beamlet.distribution.distribution import start_distribution

MSG, FIN, DONE = Atom("msg"), Atom("fin"), Atom("done")


async def echo() -> None:
    receive, send = beamlet.receive, beamlet.send
    while True:
        frm, x = await receive()
        send(frm, x)


async def sink() -> None:
    count = 0
    receive, send = beamlet.receive, beamlet.send
    while True:
        m = await receive()
        if m[0] == FIN:
            send(m[1], (DONE, count))
            count = 0
        else:
            count += 1


async def ping(dest: tuple[Atom, Atom], n: int) -> None:
    me = beamlet.self()
    receive, send = beamlet.receive, beamlet.send
    for k in range(n, 0, -1):
        send(dest, (me, k))
        got = await receive()
        if got != k:
            raise AssertionError(f"echo answered {got!r}, expected {k}")


async def blast(dest: tuple[Atom, Atom], m: int) -> None:
    me = beamlet.self()
    send = beamlet.send
    for k in range(m, 0, -1):
        send(dest, (MSG, k))
    send(dest, (FIN, me))
    done = await beamlet.receive()
    if done != (DONE, m):
        raise AssertionError(f"sink answered {done!r}, expected {(DONE, m)!r}")


async def client(peer: Atom, n: int, m: int) -> None:
    echo_dest, sink_dest = (Atom("echo"), peer), (Atom("sink"), peer)
    await ping(echo_dest, min(n, 1000))  # warm-up, and the connection
    t0 = time.perf_counter()
    await ping(echo_dest, n)
    t1 = time.perf_counter()
    await blast(sink_dest, min(m, 1000))
    t2 = time.perf_counter()
    await blast(sink_dest, m)
    t3 = time.perf_counter()
    print(f"RESULT pingpong {round((t1 - t0) * 1e6)} {n}", flush=True)
    print(f"RESULT oneway {round((t3 - t2) * 1e6)} {m}", flush=True)


async def main(argv: list[str]) -> None:
    mode, name, cookie, epmd_port = argv[0], argv[1], argv[2], int(argv[3])
    node = Node(name)
    node.block_warning = None  # a tight send loop is the point here
    await node.start()
    dist = await start_distribution(node, cookie=cookie, epmd_port=epmd_port)
    try:
        if mode == "serve":
            node.register("echo", node.spawn(echo))
            node.register("sink", node.spawn(sink))
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        else:
            peer, n, m = Atom(argv[5]), int(argv[6]), int(argv[7])
            await node.run(client, peer, n, m)
    finally:
        await dist.stop()
        await node.stop()


if __name__ == "__main__":
    if sys.argv[5] == "uvloop":
        import uvloop

        uvloop.run(main(sys.argv[1:]))
    else:
        asyncio.run(main(sys.argv[1:]))
