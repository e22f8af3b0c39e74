"""CPU instructions per sequential GenServer.call, for callgrind (docs/performance.md).

    valgrind --tool=callgrind python bench/callgrind_call.py 2000
    valgrind --tool=callgrind python bench/callgrind_call.py 7000

The difference of the two "Collected" counts divided by 5,000 is the cost of one call
(start-up cancels out). Run with PYTHONHASHSEED=0 for stable counts.
"""

import sys

import beamlet
from beamlet import GenServer, Reply


class Server(GenServer[int]):
    async def init(self, arg: int) -> int:
        return arg

    def handle_call(self, request: object, from_: object, state: int) -> Reply[int]:
        return Reply(state, state + 1)


async def main(n: int) -> None:
    pid = await Server.start_link(0)
    assert pid is not None
    call = GenServer.call
    for _ in range(n):
        await call(pid, 1)


if __name__ == "__main__":
    beamlet.run(main, int(sys.argv[1]))
