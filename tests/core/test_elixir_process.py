"""Port of the Elixir process_test.exs cases listed in docs/semantics.md §12.2 and §12.3
(lib/elixir/test/elixir/process_test.exs). Test names follow the Elixir `test "..."`
strings.

Python differences: `Process.send_after(dest, msg, ms)` is `send_after(seconds, dest,
msg)`; `read_timer`/`cancel_timer` return seconds or None (Elixir: integer or false);
`Process.exit/2` returns None (Elixir: true); `Process.monitor(pid, alias: mode)` is
`monitor(pid, alias=mode)`; `Process.alias([:reply])` is `alias("reply")`. There is no
`abs: true` option nor `cancel_timer(ref, async: true)`: the absolute-time test computes
the relative delay from the loop clock, and the async-cancel step is left out.
"""

from __future__ import annotations

import asyncio

import beamlet
from beamlet import ANY, NORMAL, Atom, Down, Exit
from beamlet.testing import assert_receive, refute_receive


async def test_send_after_3_sends_messages_once_expired() -> None:
    """send_after/3 sends messages once expired (§6)."""
    beamlet.send_after(0.010, beamlet.self(), "hello")
    await assert_receive("hello")


async def test_send_after_4_with_absolute_time_sends_message_once_expired() -> None:
    """send_after/4 with absolute time sends message once expired (§6): Python has no
    `abs: true`; a monotonic deadline is turned into a delay on the node's clock (§6.5)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.010
    beamlet.send_after(max(0.0, deadline - loop.time()), beamlet.self(), "hello")
    await assert_receive("hello")
    assert loop.time() >= deadline


async def test_send_after_3_returns_a_timer_reference_that_can_be_read_or_cancelled() -> None:
    """send_after/3 returns a timer reference that can be read or cancelled (§6)."""
    me = beamlet.self()
    timer = beamlet.send_after(100.0, me, "hello")
    assert await beamlet.receive("hello", timeout=0, default=None) is None  # refute_received
    assert isinstance(beamlet.read_timer(timer), float)
    assert isinstance(beamlet.cancel_timer(timer), float)

    timer = beamlet.send_after(0, me, "hello")
    await assert_receive("hello")
    assert beamlet.read_timer(timer) is None
    assert beamlet.cancel_timer(timer) is None


async def _wait_done() -> None:
    await beamlet.receive("done")


async def test_exit_pid_normal_does_not_cause_the_target_process_to_exit() -> None:
    """exit(pid, :normal) does not cause the target process to exit (§3.3 E2)."""
    beamlet.process_flag(trap_exit=True)
    pid = beamlet.spawn_link(_wait_done)
    assert beamlet.exit(pid, NORMAL) is None  # Elixir: true
    await refute_receive(Exit(pid, NORMAL), timeout=0.1)
    assert beamlet.is_alive(pid)
    # now exit the process for real so it doesn't hang around
    beamlet.exit(pid, Atom("abnormal"))
    await assert_receive(Exit(pid, Atom("abnormal")))
    assert not beamlet.is_alive(pid)


async def test_exit_pid_normal_makes_the_process_receive_a_message_if_it_traps_exits() -> None:
    """exit(pid, :normal) makes the process receive a message if it traps exits (§3.3 E2,
    trap_exit = true)."""
    parent = beamlet.self()

    async def child() -> None:
        beamlet.process_flag(trap_exit=True)
        beamlet.send(parent, ("trapping", beamlet.self()))
        await beamlet.receive(Exit(parent, NORMAL))
        beamlet.send(parent, ("ok", beamlet.self()))

    pid = beamlet.spawn_link(child)
    await assert_receive(("trapping", pid))
    await refute_receive(ANY, timeout=0.05)
    beamlet.exit(pid, NORMAL)
    await assert_receive(("ok", pid))
    ref = beamlet.monitor(pid)
    await assert_receive(lambda m: isinstance(m, Down) and m.ref == ref)
    assert not beamlet.is_alive(pid)


async def test_exit_self_normal_causes_the_calling_process_to_exit() -> None:
    """exit(self(), :normal) causes the calling process to exit (§3.3 E3)."""
    beamlet.process_flag(trap_exit=True)

    async def child() -> None:
        beamlet.exit(beamlet.self(), NORMAL)

    pid = beamlet.spawn_link(child)
    await assert_receive(Exit(pid, NORMAL))
    assert not beamlet.is_alive(pid)


async def test_monitor_2_with_monitor_options() -> None:
    """monitor/2 with monitor options (§4.4): the monitor ref doubles as an alias the
    target can reply through; the DOWN follows."""

    async def server() -> None:
        _, source_alias = await beamlet.receive(("ping", ANY))
        beamlet.send(source_alias, "pong")

    pid = beamlet.spawn(server)
    ref_and_alias = beamlet.monitor(pid, alias="explicit_unalias")
    beamlet.send(pid, ("ping", ref_and_alias))
    await assert_receive("pong")
    down = await assert_receive(Down)
    assert down.ref == ref_and_alias and down.pid == pid and down.reason == NORMAL


async def _pong_server(extra: bool) -> None:
    _, alias = await beamlet.receive(("ping", ANY))
    beamlet.send(alias, "pong")
    if extra:
        beamlet.send(alias, "extra_pong")


async def test_alias_0_alias_1_and_unalias_1_simple_alias_unalias_flow() -> None:
    """alias/0, alias/1, and unalias/1 — simple alias + unalias flow (§4.4): a message to
    a deactivated alias is dropped."""
    server = beamlet.spawn(_pong_server, False)
    alias = beamlet.alias()
    beamlet.unalias(alias)
    beamlet.send(server, ("ping", alias))
    await refute_receive("pong", timeout=0.05)  # Elixir: 20 ms; §12.8 asks for >= 50


async def test_alias_0_alias_1_and_unalias_1_with_reply_option_when_aliasing() -> None:
    """alias/0, alias/1, and unalias/1 — with :reply option when aliasing (§4.4): only the
    first message through a reply alias arrives."""
    server = beamlet.spawn(_pong_server, True)
    alias = beamlet.alias("reply")
    beamlet.send(server, ("ping", alias))
    await assert_receive("pong")
    await refute_receive("extra_pong", timeout=0.05)
