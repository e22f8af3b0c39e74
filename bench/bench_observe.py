"""The cost of observability: `uv run python bench/bench_observe.py [--callgrind] [--quick]`.

What it measures, each in a fresh subprocess:

  ring       CPU instructions per ring hop (1,000 processes; the difference between 30 and
             10 laps, so start-up cancels out) — with nothing attached, and with a trace
             on one process that never sees the token (the cost of the hook check).
  call       CPU instructions per sequential `GenServer.call` (difference between 7,000
             and 2,000 calls).
  snapshot   wall time of `processes()` + `process_info` over 10,000 processes, and of
             one `node_overview()`.
  trace      ring hops/s with no trace, and with every ring member traced into a
             bounded tracer (rate-limited), to show what tracing costs when it is on.
  hooks      the ring and the call with each observer attached and idle (HOOKS: the
             runtime's telemetry events, the Prometheus exporter with and without call
             sampling, the dashboard, every call sampled), against none, in one run:
             instructions per unit with --callgrind, hops/s and calls/s (median of
             --repeat runs, interleaved) without; ratios to "none". Also the cost of one
             /metrics render and one dashboard overview over 10,000 processes.

`--callgrind` counts instructions with `valgrind --tool=callgrind` (slow: ~5 min, ~40 with
hooks); without it the ring/call rows are wall-clock only. Numbers are recorded in
docs/performance.md, "Observability".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- workloads (run in a child process) -------------------------------------------------


async def _member(nxt: object, main: object) -> None:
    import beamlet

    if nxt is None:
        nxt = await beamlet.receive()
    while True:
        k = await beamlet.receive()
        if k == 0:
            beamlet.send(main, "done")  # type: ignore[arg-type]
        else:
            beamlet.send(nxt, k - 1)  # type: ignore[arg-type]


async def _ring(n: int, laps: int, traced: bool) -> float:
    import beamlet

    me = beamlet.self()
    last = nxt = beamlet.spawn(_member, None, me)
    for _ in range(n - 1):
        nxt = beamlet.spawn(_member, nxt, me)
    beamlet.send(last, nxt)
    tracer = None
    if traced:
        from beamlet.observe import trace

        idle = beamlet.spawn(beamlet.receive)
        tracer = trace.start([idle], ["send", "receive"], limit=10, output=lambda e: None)
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    beamlet.send(nxt, n * laps)
    assert await beamlet.receive() == "done"
    dt = time.perf_counter() - t0
    if tracer is not None:
        tracer.clear()
    return dt


async def _ring_all_traced(n: int, laps: int) -> float:
    """Every member traced (send + receive), the tracer rate-limited to 1000/s."""
    import beamlet
    from beamlet.observe import trace

    me = beamlet.self()
    last = nxt = beamlet.spawn(_member, None, me)
    members = [nxt]
    for _ in range(n - 1):
        nxt = beamlet.spawn(_member, nxt, me)
        members.append(nxt)
    beamlet.send(last, nxt)
    tracer = trace.start(members, ["send", "receive"], rate=(1000, 1.0), output=lambda e: None)
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    beamlet.send(nxt, n * laps)
    assert await beamlet.receive() == "done"
    dt = time.perf_counter() - t0
    tracer.clear()
    return dt


async def _calls(k: int) -> float:
    import beamlet
    from beamlet import GenServer, Reply

    class Echo(GenServer[int]):
        async def init(self, arg: int) -> int:
            return arg

        async def handle_call(self, request: object, from_: object, state: int) -> Reply[int]:
            return Reply(request, state)

    pid = await Echo.start_link(0)
    call = GenServer.call
    t0 = time.perf_counter()
    for i in range(k):
        await call(pid, i)
    dt = time.perf_counter() - t0
    beamlet.unlink(pid)
    return dt


async def _snapshot(n: int) -> tuple[float, float]:
    import beamlet
    from beamlet import observe

    for _ in range(n):
        beamlet.spawn(beamlet.receive)
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    rows = observe.processes()
    dt = time.perf_counter() - t0
    assert len(rows) >= n
    t0 = time.perf_counter()
    observe.node_overview()
    return dt, time.perf_counter() - t0


# What `hooks` attaches before the workload (each idle: no scrape, no browser).
HOOKS = {
    "none": "nothing attached",
    "telemetry": "telemetry.attach_runtime_events()",
    "prometheus": "serve_metrics() (calls sampled 1 in 100)",
    "prometheus_nocalls": "serve_metrics(call_sample_every=None)",
    "dashboard": "serve_dashboard()",
    "calls1": "calls.sample_calls(every=1) + a handler",
}


async def _attach(hook: str) -> None:
    from beamlet.observe import calls, telemetry

    if hook == "telemetry":
        telemetry.attach_runtime_events()
        telemetry.attach("bench", ("beamlet", "process", "crash"), lambda *a: None)
    elif hook in ("prometheus", "prometheus_nocalls"):
        from beamlet.observe import prometheus

        every = 100 if hook == "prometheus" else None
        await prometheus.serve_metrics(port=0, call_sample_every=every)
    elif hook == "dashboard":
        from beamlet.observe import dashboard

        await dashboard.serve_dashboard(port=0)
    elif hook == "calls1":
        calls.sample_calls(every=1)
        telemetry.attach("bench", calls.EVENT, lambda *a: None)


async def _hooked(hook: str, workload: str, size: int) -> float:
    import beamlet

    await _attach(hook)
    if workload == "ring":
        return await _ring(1000, size, False)
    dt = await _calls(size)
    for pid in beamlet.processes():  # the observers' processes: let the node stop
        beamlet.unlink(pid)
    return dt


async def _scrape_costs(n: int) -> tuple[float, float]:
    import beamlet
    from beamlet.observe import prometheus
    from beamlet.observe.dashboard import data

    for _ in range(n):
        beamlet.spawn(beamlet.receive)
    exporter = prometheus.Exporter(beamlet.current_node())
    exporter.attach()
    t0 = time.perf_counter()
    exporter.render()
    a = time.perf_counter() - t0
    t0 = time.perf_counter()
    status, _ = await data.api("overview", {})
    assert status == 200
    return a, time.perf_counter() - t0


def child(args: list[str]) -> None:
    import beamlet

    kind = args[0]
    if kind == "hooked":
        hook, workload, size = args[1], args[2], int(args[3])
        if hook != "none":  # imported here, not in the server's 10 s start-up (valgrind)
            import aiohttp.web  # noqa: F401
        dt = beamlet.run(_hooked, hook, workload, size)
        units = 1000 * size if workload == "ring" else size
        print(f"RESULT {units / dt:.1f}")
        return
    if kind == "scrape":
        a, b = beamlet.run(_scrape_costs, int(args[1]))
        print(f"RESULT {a * 1e3:.2f} {b * 1e3:.2f}")
        return
    if kind == "ring":
        n, laps, traced = int(args[1]), int(args[2]), args[3] == "1"
        dt = beamlet.run(_ring, n, laps, traced)
        print(f"RESULT {n * laps / dt:.1f}")
    elif kind == "ring_all":
        n, laps = int(args[1]), int(args[2])
        dt = beamlet.run(_ring_all_traced, n, laps)
        print(f"RESULT {n * laps / dt:.1f}")
    elif kind == "call":
        k = int(args[1])
        dt = beamlet.run(_calls, k)
        print(f"RESULT {k / dt:.1f}")
    elif kind == "snapshot":
        a, b = beamlet.run(_snapshot, int(args[1]))
        print(f"RESULT {a * 1e3:.2f} {b * 1e3:.2f}")


# --- the driver ----------------------------------------------------------------------


def _run(argv: list[str], callgrind: bool) -> tuple[str, int | None]:
    cmd = [sys.executable, "-X", "frozen_modules=on", __file__, "--child", *argv]
    env = dict(os.environ, PYTHONHASHSEED="0")
    if not callgrind:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        return out, None
    with tempfile.TemporaryDirectory() as d:
        outfile = Path(d) / "cg.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}", *cmd],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        text = outfile.read_text()
        m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
        assert m, "no callgrind summary"
        return "", int(m.group(1))


def _instructions(small: list[str], big: list[str], units: int) -> float:
    _, a = _run(small, True)
    _, b = _run(big, True)
    assert a is not None and b is not None
    return (b - a) / units


def _rate(argv: list[str], repeat: int) -> float:
    vals = []
    for _ in range(repeat):
        out, _ = _run(argv, False)
        vals.append(float(out.split("RESULT")[1].split()[0]))
    vals.sort()
    return vals[len(vals) // 2]


def _hooks(callgrind: bool, quick: bool, repeat: int) -> list[tuple[str, str, str]]:
    """Each observer attached vs none, in this one run (see HOOKS); ratios to none."""
    rows: list[tuple[str, str, str]] = []
    if callgrind:  # ring: 30 - 10 laps of 1,000; call: 7,000 - 2,000 calls
        for workload, small, big, units, unit in (
            ("ring", 10, 30, 20_000, "hop"),
            ("call", 2000, 7000, 5000, "call"),
        ):
            base = 0.0
            for hook, label in HOOKS.items():
                per = _instructions(
                    ["hooked", hook, workload, str(small)],
                    ["hooked", hook, workload, str(big)],
                    units,
                )
                base = base or per
                rows.append(
                    (
                        f"{workload}, {label}",
                        f"{per:,.0f}",
                        f"instructions/{unit} ({per / base:.3f}x)",
                    )
                )
    sizes = {"ring": 20 if quick else 200, "call": 10_000 if quick else 50_000}
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeat):  # interleaved, so load on the machine hits every hook alike
        for workload, size in sizes.items():
            for hook in HOOKS:
                out, _ = _run(["hooked", hook, workload, str(size)], False)
                rate = float(out.split("RESULT")[1].split()[0])
                rates.setdefault((workload, hook), []).append(rate)
    for workload in sizes:
        base = 0.0
        for hook, label in HOOKS.items():
            vals = sorted(rates[(workload, hook)])
            med = vals[len(vals) // 2]
            base = base or med
            unit = "hops/s" if workload == "ring" else "calls/s"
            rows.append((f"{workload}, {label}", f"{med:,.0f}", f"{unit} ({med / base:.2f}x)"))
    out, _ = _run(["scrape", "10000"], False)
    a, b = out.split("RESULT")[1].split()
    rows.append(("one /metrics render, 10,000 processes", a, "ms"))
    rows.append(("one dashboard overview, 10,000 processes", b, "ms"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", nargs=argparse.REMAINDER)
    ap.add_argument("--callgrind", action="store_true", help="count CPU instructions (slow)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="ring,call,snapshot,trace,hooks")
    ap.add_argument("--repeat", type=int, default=0, help="wall-clock runs per row (median)")
    ns = ap.parse_args()
    if ns.child:
        child(ns.child)
        return
    only = set(ns.only.split(","))
    repeat = ns.repeat or (1 if ns.quick else 3)
    rows: list[tuple[str, str, str]] = []
    if "ring" in only:
        if ns.callgrind:
            for traced in ("0", "1"):
                per = _instructions(
                    ["ring", "1000", "10", traced], ["ring", "1000", "30", traced], 20_000
                )
                label = (
                    "ring hop, one idle process traced"
                    if traced == "1"
                    else "ring hop, nothing attached"
                )
                rows.append((label, f"{per:,.0f}", "instructions/hop"))
        laps = 20 if ns.quick else 100
        rows.append(
            (
                "ring, nothing attached",
                f"{_rate(['ring', '10000', str(laps), '0'], repeat):,.0f}",
                "hops/s",
            )
        )
    if "call" in only:
        if ns.callgrind:
            per = _instructions(["call", "2000"], ["call", "7000"], 5000)
            rows.append(("GenServer.call, nothing attached", f"{per:,.0f}", "instructions/call"))
        k = 20_000 if ns.quick else 100_000
        rows.append(
            (
                "GenServer.call, nothing attached",
                f"{_rate(['call', str(k)], repeat):,.0f}",
                "calls/s",
            )
        )
    if "trace" in only:
        laps = 5 if ns.quick else 20
        base = _rate(["ring", "1000", str(laps), "0"], repeat)
        traced = _rate(["ring_all", "1000", str(laps)], repeat)
        rows.append(("ring, 1,000 members, no trace", f"{base:,.0f}", "hops/s"))
        rows.append(
            (
                "ring, every member traced (rate 1000/s)",
                f"{traced:,.0f}",
                f"hops/s ({traced / base:.2f}x)",
            )
        )
    if "snapshot" in only:
        out, _ = _run(["snapshot", "10000"], False)
        a, b = out.split("RESULT")[1].split()
        rows.append(("processes() over 10,000 processes", a, "ms"))
        rows.append(("node_overview()", b, "ms"))
    if "hooks" in only:
        rows.extend(_hooks(ns.callgrind, ns.quick, repeat))
    print(f"beamlet observability benchmarks, Python {sys.version.split()[0]}")
    w = max(len(r[0]) for r in rows)
    for label, value, unit in rows:
        print(f"  {label:<{w}}  {value:>12}  {unit}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
