"""beamlet's kernel benchmarks: `./dev bench [--quick] [--only ring,spawn] [--repeat N]`.

Every workload runs on up to six systems, each in its own fresh subprocess (honest RSS,
nothing warmed up by another system), interleaved, all in the same run:

  beamlet     beamlet.run on the default asyncio loop, and on uvloop;
  task/proc   the bare Task-per-process design (bench/baselines/task_per_process.py:
              asyncio Task + deque mailbox + Future wake-up), on asyncio and on uvloop;
  BEAM        bench/beam/bench_beam.erl, compiled with erlc into a temporary directory,
              under `erl +S 1` and with the default schedulers (skipped without erl).

Workloads (full sizes; --quick shrinks them for a fast sanity run):

  spawn      spawn 1,000,000 processes that wait in receive: µs per spawn (until every
             one is parked in receive) and RSS bytes per process ((RSS after - RSS
             before) / N, both after a full GC). Targets: <= 6 µs/spawn, <= 1.5 KB.
  ring       a ring of 10,000 processes passes a countdown token for 1,000,000 hops:
             hops/s. Target: beamlet >= 4x task/proc on the same loop.
  fanin      100 senders x 10,000 messages to one receiver: msgs/s, from the first
             spawn to the receiver's last message.
  selective  100,000 messages sit in a process's mailbox; it sends itself one message
             tagged with a fresh ref and receives it: µs per receive, with a receive
             marker (beamlet `receive((ref, ANY), since=ref)`, the ref made before the
             send; the BEAM's make_ref/receive optimisation) and with a plain predicate
             scan of the whole mailbox (`lambda m: m[0] is ref`; BEAM `{tag, K}`).
  storm      a chain of 10,000 linked processes, brought down by one crash (an
             exception in the head): ms until all are gone (a monitor on the last
             one, then the live-process count back to its baseline; in Python every
             coroutine has unwound by then).
  linkmon    link, unlink, monitor and demonitor on 100,000 idle processes: µs/op.

Ratios read "times better than the reference" (>1x = faster or smaller), against
task/proc on asyncio and BEAM +S 1 from the same run. Every subprocess has a timeout: a
system that fails or hangs prints "error" / "timeout" and the run goes on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERL_SRC = ROOT / "bench" / "beam" / "bench_beam.erl"
TPP, BEAM1 = "tpp-asyncio", "beam-s1"  # the references of the ratio columns


@dataclass(frozen=True)
class System:
    key: str
    label: str
    cmd: tuple[str, ...]  # the command before "<workload> <sizes...>"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool


@dataclass(frozen=True)
class Workload:
    title: str  # formatted with the sizes, then their product
    full: tuple[int, ...]
    quick: tuple[int, ...]
    metrics: tuple[Metric, ...]
    targets: tuple[tuple[str, str, float], ...] = ()  # (metric, "max" | "x_tpp", bound)


WORKLOADS = {
    "spawn": Workload(
        "1. spawn: {0:,} processes waiting in receive",
        (1_000_000,),
        (100_000,),
        (
            Metric("us_per_spawn", "µs per spawn", False),
            Metric("rss_per_proc", "RSS bytes per process", False),
        ),
        (("us_per_spawn", "max", 6.0), ("rss_per_proc", "max", 1536.0)),
    ),
    "ring": Workload(
        "2. ring: {0:,} processes x {1} laps = {2:,} hops",
        (10_000, 100),
        (1_000, 100),
        (Metric("hops_per_s", "hops/s", True),),
        (("hops_per_s", "x_tpp", 4.0),),
    ),
    "fanin": Workload(
        "3a. fan-in: {0} senders x {1:,} messages to one receiver",
        (100, 10_000),
        (100, 1_000),
        (Metric("msgs_per_s", "msgs/s", True),),
    ),
    "selective": Workload(
        "3b. selective receive: one tagged message behind {0:,} others"
        " ({1:,} marker receives, {2:,} scans)",
        (100_000, 10_000, 30),
        (10_000, 1_000, 20),
        (
            Metric("since_us", "µs/receive, marker (since=ref)", False),
            Metric("scan_us", "µs/receive, predicate scan", False),
        ),
    ),
    "storm": Workload(
        "4. exit-signal storm: a chain of {0:,} linked processes, one crash",
        (10_000,),
        (2_000,),
        (Metric("reap_ms", "ms to reap all", False),),
    ),
    "linkmon": Workload(
        "5. link / monitor cost on {0:,} idle processes",
        (100_000,),
        (10_000,),
        tuple(
            Metric(f"{op}_us", f"µs per {op}", False)
            for op in ("link", "unlink", "monitor", "demonitor")
        ),
    ),
}


def systems(erl_dir: str | None) -> list[System]:
    py = sys.executable
    out = [
        System(
            "beamlet-asyncio", "beamlet    asyncio", (py, "-m", "bench.beamlet_worker", "asyncio")
        ),
        System("beamlet-uvloop", "beamlet    uvloop", (py, "-m", "bench.beamlet_worker", "uvloop")),
        System(TPP, "task/proc  asyncio", (py, "-m", "bench.tpp_worker", "asyncio")),
        System("tpp-uvloop", "task/proc  uvloop", (py, "-m", "bench.tpp_worker", "uvloop")),
    ]
    if erl_dir:
        erl = ("erl", "-noshell", "+P", "5000000")
        tail = ("-pa", erl_dir, "-run", "bench_beam", "main")
        out.append(System(BEAM1, "BEAM       +S 1", (*erl, "+S", "1", *tail)))
        out.append(System("beam-default", "BEAM       default", (*erl, *tail)))
    return out


Outcome = dict[str, float] | str  # metrics, or "error: ..." / "timeout"


def run_one(system: System, workload: str, sizes: tuple[int, ...], timeout: float) -> Outcome:
    """Run one system on one workload in a fresh subprocess (its own process group)."""
    cmd = [*system.cmd, workload, *map(str, sizes)]
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as e:
        return f"error: {e}"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return "timeout"
    metrics = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            d = json.loads(line[7:])
            metrics[d["metric"]] = float(d["value"])
    if proc.returncode != 0 or not metrics:
        last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"error: {last[:200]}"
    return metrics


def compile_erl() -> tuple[str | None, str]:
    """(ebin directory or None, "Erlang/OTP x (erts y)" or why not)."""
    if not (shutil.which("erl") and shutil.which("erlc")):
        return None, "no erl/erlc: BEAM rows skipped"
    d = tempfile.mkdtemp(prefix="beamlet-bench-")
    expr = 'io:format("~s ~s", [erlang:system_info(otp_release), erlang:system_info(version)])'
    try:
        subprocess.run(
            ["erlc", "-o", d, str(ERL_SRC)], check=True, timeout=120, capture_output=True, text=True
        )
        v = subprocess.run(
            ["erl", "-noshell", "-eval", expr + ", halt()."],
            check=False,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout.split()
    except (subprocess.SubprocessError, OSError) as e:
        shutil.rmtree(d, ignore_errors=True)
        return None, f"erlc failed ({e}): BEAM rows skipped"
    return d, f"Erlang/OTP {v[0]} (erts {v[1]})" if len(v) == 2 else "Erlang/OTP ?"


def fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e5:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def ratio(m: Metric, v: float, ref: float | None) -> str:
    if ref is None or v <= 0 or ref <= 0:
        return "—"
    r = v / ref if m.higher_is_better else ref / v
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.1g}x"


def summarize(outcomes: list[Outcome], metric: str) -> tuple[float | None, str]:
    """(median over the successful repeats, note: spread, failures, or why no value)."""
    ok = [o[metric] for o in outcomes if isinstance(o, dict) and metric in o]
    failed = [o for o in outcomes if isinstance(o, str)]
    if not ok:
        return None, (failed[0].split(":")[0] if failed else "n/a")
    med = statistics.median(ok)
    note = f"±{(max(ok) - min(ok)) / med / 2 * 100:.0f}%" if len(ok) > 1 and med else ""
    if failed:
        note = f"{note} ({len(failed)}/{len(outcomes)} failed)".strip()
    return med, note


def table(
    wl: Workload,
    sizes: tuple[int, ...],
    results: dict[str, list[Outcome]],
    systems_: list[System],
    run_id: str,
) -> str:
    def get(key: str, metric: str) -> float | None:
        return summarize(results.get(key, []), metric)[0]

    lines = [f"== {wl.title.format(*sizes, math.prod(sizes))}   [run {run_id}]"]
    sched = [o.get("schedulers") for o in results.get("beam-default", []) if isinstance(o, dict)]
    labels = {s.key: s.label for s in systems_}
    if sched and "beam-default" in labels:
        labels["beam-default"] += f" (+S {sched[0]:.0f})"
    heads = [
        f"{m.label}, {'higher' if m.higher_is_better else 'lower'} is better" for m in wl.metrics
    ]
    w = max(len(h) for h in heads) + 2
    for m, head in zip(wl.metrics, heads, strict=True):
        lines.append(f"  {head:<{w}}{'value':>10}{'vs task/proc':>14}{'vs BEAM +S 1':>14}  spread")
        tpp, beam = get(TPP, m.key), get(BEAM1, m.key)
        for s in systems_:
            v, note = summarize(results.get(s.key, []), m.key)
            cells = (
                (fmt(v), ratio(m, v, tpp), ratio(m, v, beam)) if v is not None else (note, "—", "—")
            )
            lines.append(
                f"    {labels[s.key]:<{w - 2}}{cells[0]:>10}{cells[1]:>14}{cells[2]:>14}  "
                f"{note if v is not None else ''}".rstrip()
            )
    for metric, kind, bound in wl.targets:
        m = next(m for m in wl.metrics if m.key == metric)
        checks = []
        for loop in ("asyncio", "uvloop"):
            v = get(f"beamlet-{loop}", metric)
            if kind == "max":
                shown, ok = (fmt(v), v <= bound) if v is not None else ("—", False)
            else:
                ref = get(f"tpp-{loop}", metric)
                x = v / ref if v and ref else None
                shown, ok = (f"{x:.2f}x", x >= bound) if x is not None else ("—", False)
            checks.append(f"{loop} {shown} {'met' if ok else 'MISSED'}")
        goal = f"<= {fmt(bound)}" if kind == "max" else f">= {bound:g}x task/proc on the same loop"
        lines.append(f"  target: beamlet {m.label} {goal}: " + ", ".join(checks))
    errors = dict.fromkeys(
        f"  ! {labels[s.key].split()[0]} {labels[s.key].split()[1]}: {o}"
        for s in systems_
        for o in results.get(s.key, [])
        if isinstance(o, str) and o != "timeout"
    )
    return "\n".join(lines + list(errors))


def src_digest() -> str:
    """A short hash of the kernel's source: other work in a shared checkout can change it
    mid-run, and then the rows of one table may come from different code."""
    h = hashlib.sha1()
    for f in sorted((ROOT / "src").rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:8]


def header(erl_info: str, args: argparse.Namespace, run_id: str, src: str) -> str:
    try:
        import uvloop

        uv = f"uvloop {uvloop.__version__}"
    except ImportError:
        uv = "no uvloop"
    git = (
        subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or "?"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "quick" if args.quick else "full"
    return (
        f"beamlet kernel benchmarks, run {run_id} ({mode} sizes, median of {args.repeat}, "
        f"beamlet @ {git}, src {src})\n"
        f"machine: {os.cpu_count()} CPUs {platform.machine()}, {platform.system()} "
        f"{platform.release()}, load avg {load} | Python {platform.python_version()}, {uv} | "
        f"{erl_info}\n"
        "Every number below was measured in this run: each system in a fresh subprocess, "
        "systems interleaved.\nRatios: times better than task/proc on asyncio and than "
        "BEAM +S 1 (>1x = faster or smaller); compare ratios, not absolute numbers.\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a sanity run")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    ap.add_argument(
        "--systems",
        default="",
        help="comma-separated keys (default all): beamlet-asyncio, beamlet-uvloop, "
        "tpp-asyncio, tpp-uvloop, beam-s1, beam-default",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per system; the median is shown")
    ap.add_argument("--timeout", type=float, help="seconds per subprocess (300; quick: 60)")
    ap.add_argument("--json", type=Path, help="also write every raw result to this file")
    args = ap.parse_args()
    names = [w.strip() for w in args.only.split(",") if w.strip()]
    if bad := [w for w in names if w not in WORKLOADS]:
        ap.error(f"unknown workload(s) {bad}; choose from {', '.join(WORKLOADS)}")
    timeout = args.timeout or (60.0 if args.quick else 300.0)
    run_id = time.strftime("%Y-%m-%d %H:%M:%S")
    erl_dir, erl_info = compile_erl()
    try:
        systems_ = systems(erl_dir)
        if args.systems:
            keep = set(args.systems.split(","))
            if bad := keep - {s.key for s in systems(".")}:
                ap.error(f"unknown system(s) {sorted(bad)}")
            systems_ = [s for s in systems_ if s.key in keep]
        src = src_digest()
        print(header(erl_info, args, run_id, src), flush=True)
        raw: dict[str, dict[str, list[Outcome]]] = {}
        for name in names:
            wl = WORKLOADS[name]
            sizes = wl.quick if args.quick else wl.full
            results: dict[str, list[Outcome]] = raw.setdefault(name, {})
            src = src_digest()
            for rep in range(args.repeat):
                order = systems_[rep % len(systems_) :] + systems_[: rep % len(systems_)]
                for s in order:
                    t0 = time.perf_counter()
                    o = run_one(s, name, sizes, timeout)
                    results.setdefault(s.key, []).append(o)
                    status = o if isinstance(o, str) else "ok"
                    print(
                        f"  .. {name} {s.key} #{rep + 1}: {status} "
                        f"({time.perf_counter() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            text = table(wl, sizes, results, systems_, run_id)
            if (now := src_digest()) != src:
                text += f"\n  ! src/ changed while this table ran ({src} -> {now}): rows may differ"
            print(text + "\n", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"run": run_id, "results": raw}, indent=1))
    finally:
        if erl_dir:
            shutil.rmtree(erl_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
