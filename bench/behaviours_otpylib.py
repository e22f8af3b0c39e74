"""otpylib baseline of bench/bench_behaviours.py (an asyncio OTP clone on PyPI).

Usage: python -m bench.behaviours_otpylib <workload> <ints...>   (in an env with otpylib)

Written for otpylib 0.5.18: a gen_server is a class built with the `OTPModule`
metaclass (`behavior=GEN_SERVER`, all five callbacks required), the runtime is an
`AsyncIOBackend` installed with `set_runtime`, and `gen_server.call` only finds a server
by its registered *name* (a pid raises "not found in registry"), so the server is
started with `name=`. Calls and casts run in otpylib processes.

  call K        one client process, K sequential gen_server.call: calls/s
  callc C K     C client processes x K calls each to one server: total calls/s
  cast N        N gen_server.cast, then one call answered with the count: casts/s
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from otpylib import gen_server, process
from otpylib.module import GEN_SERVER, OTPModule
from otpylib.runtime import set_runtime
from otpylib.runtime.backends.asyncio_backend import AsyncIOBackend

from bench.behaviours_common import WARMUP, emit, finish, ints, now


class Echo(metaclass=OTPModule, behavior=GEN_SERVER, version="1.0.0"):
    async def init(self, arg: Any) -> int:
        return 0

    async def handle_call(self, request: Any, from_: Any, state: int) -> Any:
        return (gen_server.Reply(payload=request), state)

    async def handle_cast(self, request: Any, state: int) -> Any:
        return (gen_server.NoReply(), state)

    async def handle_info(self, message: Any, state: int) -> Any:
        return (gen_server.NoReply(), state)

    async def terminate(self, reason: Any, state: int) -> None:
        return None


class Counter(metaclass=OTPModule, behavior=GEN_SERVER, version="1.0.0"):
    async def init(self, arg: Any) -> int:
        return 0

    async def handle_call(self, request: Any, from_: Any, state: int) -> Any:
        return (gen_server.Reply(payload=state), state)

    async def handle_cast(self, request: Any, state: int) -> Any:
        return (gen_server.NoReply(), state + 1)

    async def handle_info(self, message: Any, state: int) -> Any:
        return (gen_server.NoReply(), state)

    async def terminate(self, reason: Any, state: int) -> None:
        return None


async def call_loop(name: str, k: int) -> None:
    call = gen_server.call
    for i in range(k):
        if await call(name, i) != i:
            raise AssertionError("wrong reply")


async def call_w(k: int) -> None:
    await gen_server.start(Echo, None, name="echo")
    await call_loop("echo", WARMUP)
    t0 = now()
    await call_loop("echo", k)
    emit("calls_per_s", k / (now() - t0))


async def callc_w(c: int, k: int) -> None:
    await gen_server.start(Echo, None, name="echo")
    await call_loop("echo", WARMUP)
    me = process.self()

    async def client() -> None:
        await call_loop("echo", k)
        await process.send(me, "done")

    t0 = now()
    for _ in range(c):
        await process.spawn(client, mailbox=True)
    for _ in range(c):
        assert await process.receive() == "done"
    emit("calls_per_s", c * k / (now() - t0))


async def cast_w(n: int) -> None:
    await gen_server.start(Counter, None, name="counter")
    cast = gen_server.cast
    for i in range(WARMUP):
        await cast("counter", i)
    assert await gen_server.call("counter", "count") == WARMUP
    t0 = now()
    for i in range(n):
        await cast("counter", i)
    count = await gen_server.call("counter", "count")
    t1 = now()
    assert count == WARMUP + n, count
    emit("casts_per_s", n / (t1 - t0))


WORKLOADS: dict[str, Callable[..., Awaitable[None]]] = {
    "call": call_w,
    "callc": callc_w,
    "cast": cast_w,
}


async def main(workload: str, sizes: list[int]) -> None:
    backend = AsyncIOBackend()
    await backend.initialize()
    set_runtime(backend)
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def bench_process() -> None:
        # otpylib swallows a process's exception: hand it to main instead.
        try:
            await WORKLOADS[workload](*sizes)
        except BaseException as e:
            traceback.print_exc()
            done.set_result(e)
        else:
            done.set_result(None)

    await process.spawn(bench_process, mailbox=True)
    error = await done
    if error is not None:
        raise SystemExit(f"otpylib {workload} failed: {error!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], ints(sys.argv[2:])))
    finish()
