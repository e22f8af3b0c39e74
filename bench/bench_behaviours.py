"""beamlet's OTP behaviours against their baselines, all measured in the same run:
`uv run python bench/bench_behaviours.py [--quick] [--repeat N]`.

Every system runs each workload in its own fresh subprocess (with a timeout), systems
interleaved (the order rotates every repeat), the median of the repeats shown:

  beamlet          GenServer / Supervisor / Task on beamlet.run, on asyncio and uvloop
                   (bench/behaviours_beamlet.py)
  asyncio Future   the bare request/reply of the prototypes: one server Task, a deque
                   mailbox, a fresh Future per request resolved by the server
                   (bench/behaviours_asyncio.py); on asyncio and uvloop. The reference.
  asyncio Queue    the same with an asyncio.Queue mailbox
  Pykka            ActorRef.ask / tell on ThreadingActors (bench/behaviours_pykka.py)
  otpylib          gen_server.call / cast (bench/behaviours_otpylib.py)
  BEAM +S 1        gen_server:call / cast and a supervisor (bench/behaviours_beam.erl,
                   compiled with erlc into a temporary directory; skipped without erl)

Pykka and otpylib are never installed into the project: each runs in a throwaway
environment (`uv run --no-project --with pykka==...`, or a temporary venv + pip when uv
is missing); if that cannot be made, their rows say n/a and why. They get a tenth of the
call/cast counts (they are ~10-100x slower), which changes no rate.

Workloads (full sizes; --quick shrinks them):

  call     one client, 100,000 sequential GenServer.call round trips: calls/s
  callc    100 concurrent client processes x 1,000 calls to one server: total calls/s
  cast     500,000 GenServer.cast, then one call that returns the count (so every cast
           has been handled): casts/s
  restart  a one_for_one supervisor with one GenServer child: kill it (exit KILL), time
           until the restarted child has answered a call; median (p90 in the notes) of
           2,000, with a fresh supervisor every 100 restarts (OTP's supervisor scans its
           restart history on every restart: 2,000 in one second made the BEAM 4x
           slower). Supervisor reports are switched off on both beamlet and the BEAM.
  stream   Task.async_stream(range(20,000), identity, max_concurrency=os.cpu_count()),
           µs per item, against asyncio.gather of 20,000 trivial coroutines and a plain
           loop calling the identity function

The ratio column reads "times better than this row for beamlet on asyncio" (>1x: beamlet
is faster). Targets (sequential call, from the issue): >= 1.5x the asyncio Future
request/reply of the same run (about 0.3x the BEAM), >= 10x Pykka, >= 5x otpylib, with
the call still monitor + alias based (checked at run time). When the first target is
missed, a breakdown of where a call's time goes (the protocol built up step by step)
and a cProfile of beamlet's sequential call loop are printed after the table
(`--profile always|never` to change that).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERL_SRC = ROOT / "bench" / "behaviours_beam.erl"
PYKKA, OTPYLIB = "pykka==4.5.0", "otpylib==0.5.18"
REF = "beamlet-asyncio"  # the row every ratio compares with

FULL = {"call": (100_000,), "callc": (100, 1_000), "cast": (500_000,)}
FULL |= {"restart": (2_000,), "stream": (20_000,)}
QUICK = {"call": (20_000,), "callc": (100, 200), "cast": (50_000,)}
QUICK |= {"restart": (200,), "stream": (5_000,)}


@dataclass
class System:
    key: str
    label: str
    cmd: list[str] | None  # the command before "<workload> <sizes...>"; None: n/a
    workloads: tuple[str, ...]
    why_not: str = ""  # when cmd is None
    scale: int = 1  # divide call/cast counts by this


@dataclass(frozen=True)
class Row:
    system: str
    metric: str
    label: str | None = None  # default: the system's label


@dataclass(frozen=True)
class Section:
    workload: str
    title: str  # formatted with the sizes
    unit: str
    higher_is_better: bool
    rows: tuple[Row, ...]
    ref_metric: str  # beamlet-asyncio's metric the ratios divide by
    targets: dict[str, tuple[str, float]] = field(default_factory=dict)  # system -> goal
    note_metric: str | None = None  # shown in the notes column (p90)


CALL_ROWS = tuple(
    Row(s, "calls_per_s")
    for s in (
        "beamlet-asyncio",
        "beamlet-uvloop",
        "asyncio-future",
        "asyncio-future-uvloop",
        "asyncio-queue",
        "pykka",
        "otpylib",
        "beam-s1",
    )
)
SECTIONS = (
    Section(
        "call",
        "1a. GenServer.call, one client, sequential ({0:,} calls)",
        "calls/s",
        True,
        CALL_ROWS,
        "calls_per_s",
        {
            "asyncio-future": (">=", 1.5),
            "pykka": (">=", 10.0),
            "otpylib": (">=", 5.0),
            "beam-s1": ("~", 0.3),
        },
    ),
    Section(
        "callc",
        "1b. GenServer.call, {0} concurrent clients x {1:,} calls, one server",
        "calls/s",
        True,
        CALL_ROWS,
        "calls_per_s",
    ),
    Section(
        "cast",
        "2. GenServer.cast throughput, one server ({0:,} casts, then a call)",
        "casts/s",
        True,
        tuple(Row(r.system, "casts_per_s") for r in CALL_ROWS),
        "casts_per_s",
    ),
    Section(
        "restart",
        "3. Supervisor restart latency, one_for_one: kill the child, until the new one "
        "answers a call (median of {0:,})",
        "µs",
        False,
        tuple(Row(s, "restart_us") for s in ("beamlet-asyncio", "beamlet-uvloop", "beam-s1")),
        "restart_us",
        note_metric="restart_p90_us",
    ),
    Section(
        "stream",
        "4. Task.async_stream, identity over {0:,} items, max_concurrency=os.cpu_count()="
        + str(os.cpu_count()),
        "µs/item",
        False,
        (
            Row("beamlet-asyncio", "stream_us_per_item", "beamlet    asyncio  async_stream"),
            Row("beamlet-uvloop", "stream_us_per_item", "beamlet    uvloop   async_stream"),
            Row("asyncio-future", "gather_us_per_item", "asyncio    asyncio.gather(coros)"),
            Row("asyncio-future-uvloop", "gather_us_per_item", "asyncio    uvloop   gather"),
            Row("asyncio-future", "loop_us_per_item", "plain loop (identity calls)"),
        ),
        "stream_us_per_item",
    ),
)
WORKLOADS = [s.workload for s in SECTIONS]

Outcome = dict[str, float] | str  # metrics, or "error: ..." / "timeout"


# --- environments -----------------------------------------------------------------------


def base_python() -> str:
    """The interpreter behind the project's venv, for the throwaway environments."""
    return getattr(sys, "_base_executable", None) or sys.executable


def find_uv() -> str | None:
    return shutil.which("uv") or next(
        (str(p) for p in (ROOT / ".tools" / "bin" / "uv",) if p.exists()), None
    )


def last_line(text: str, default: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else default)[:160]


def throwaway_python(req: str, module: str, tmp: Path) -> tuple[list[str] | None, str]:
    """A command prefix running Python with `req` installed outside the project, and the
    installed version; or (None, why not)."""
    probe = f"import {module}, importlib.metadata as m; print(m.version({module!r}))"
    uv = find_uv()
    if uv:
        prefix = [uv, "run", "--no-project", "--python", base_python(), "--with", req, "python"]
    else:  # a temporary venv + pip
        venv = tmp / f"venv-{module}"
        try:
            subprocess.run(
                [base_python(), "-m", "venv", str(venv)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", req]
            r = subprocess.run(pip, capture_output=True, text=True, timeout=300, check=False)
            if r.returncode != 0:
                return None, f"pip install {req} failed: {last_line(r.stderr, '?')}"
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"no venv for {req}: {e}"
        prefix = [str(venv / "bin" / "python")]
    try:
        r = subprocess.run(
            [*prefix, "-c", probe],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"cannot install {req}: {e}"
    if r.returncode != 0:
        return None, f"cannot install {req}: {last_line(r.stderr, 'exit ' + str(r.returncode))}"
    return prefix, r.stdout.strip()


def compile_erl(tmp: Path) -> tuple[str | None, str]:
    """(ebin directory or None, "Erlang/OTP x (erts y)" or why not)."""
    if not (shutil.which("erl") and shutil.which("erlc")):
        return None, "no erl/erlc: BEAM rows n/a"
    expr = 'io:format("~s ~s", [erlang:system_info(otp_release), erlang:system_info(version)])'
    ebin = tmp / "ebin"
    ebin.mkdir()
    try:
        subprocess.run(
            ["erlc", "-o", str(ebin), str(ERL_SRC)],
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
        )
        v = subprocess.run(
            ["erl", "-noshell", "-eval", expr + ", halt()."],
            check=False,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout.split()
    except subprocess.CalledProcessError as e:
        return None, f"erlc failed: {last_line(e.stderr or '', '?')}: BEAM rows n/a"
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"erlc failed ({e}): BEAM rows n/a"
    return str(ebin), f"Erlang/OTP {v[0]} (erts {v[1]})" if len(v) == 2 else "Erlang/OTP ?"


def make_systems(tmp: Path, want: set[str]) -> tuple[list[System], dict[str, str]]:
    """The systems, and version strings for the header."""
    py = sys.executable
    info: dict[str, str] = {}
    calls = ("call", "callc", "cast")
    out = [
        System(
            "beamlet-asyncio",
            "beamlet    asyncio",
            [py, "-m", "bench.behaviours_beamlet", "asyncio"],
            tuple(WORKLOADS),
        ),
        System(
            "beamlet-uvloop",
            "beamlet    uvloop",
            [py, "-m", "bench.behaviours_beamlet", "uvloop"],
            tuple(WORKLOADS),
        ),
        System(
            "asyncio-future",
            "asyncio    Future",
            [py, "-m", "bench.behaviours_asyncio", "asyncio", "future"],
            (*calls, "stream"),
        ),
        System(
            "asyncio-future-uvloop",
            "asyncio    Future, uvloop",
            [py, "-m", "bench.behaviours_asyncio", "uvloop", "future"],
            (*calls, "stream"),
        ),
        System(
            "asyncio-queue",
            "asyncio    Queue",
            [py, "-m", "bench.behaviours_asyncio", "asyncio", "queue"],
            calls,
        ),
    ]
    for key, label, req, module in (
        ("pykka", "Pykka      ask/tell", PYKKA, "pykka"),
        ("otpylib", "otpylib    gen_server", OTPYLIB, "otpylib"),
    ):
        if key not in want:
            continue
        print(f"  .. preparing a throwaway environment with {req}", file=sys.stderr, flush=True)
        prefix, detail = throwaway_python(req, module, tmp)
        if prefix is None:
            out.append(System(key, label, None, calls, why_not=detail))
            info[key] = f"{module} n/a"
        else:
            cmd = [*prefix, "-m", f"bench.behaviours_{module}"]
            out.append(System(key, label, cmd, calls, scale=10))
            info[key] = f"{module} {detail}"
    if "beam-s1" in want:
        ebin, erl_info = compile_erl(tmp)
        info["beam"] = erl_info
        cmd = None
        if ebin:
            cmd = ["erl", "-noshell", "+S", "1", "-pa", ebin, "-run", "behaviours_beam", "main"]
        out.append(System("beam-s1", "BEAM       +S 1", cmd, (*calls, "restart"), why_not=erl_info))
    return [s for s in out if s.key in want], info


# --- running ----------------------------------------------------------------------------


def sizes_for(system: System, workload: str, quick: bool) -> tuple[int, ...]:
    sizes = (QUICK if quick else FULL)[workload]
    if system.scale == 1:
        return sizes
    if workload == "callc":
        return (sizes[0], max(1, sizes[1] // system.scale))
    return tuple(max(1, n // system.scale) for n in sizes)


def run_one(cmd: list[str], timeout: float) -> tuple[Outcome, str]:
    """Run one worker in a fresh subprocess (its own process group): (metrics or
    "error: ..." / "timeout", its non-RESULT output)."""
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
    except OSError as e:
        return f"error: {e}", ""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return "timeout", ""
    metrics: dict[str, float] = {}
    other = []
    for line in out.splitlines():
        if line.startswith("RESULT "):
            d = json.loads(line[7:])
            metrics[d["metric"]] = float(d["value"])
        else:
            other.append(line)
    if proc.returncode != 0 or not metrics:
        return f"error: {last_line(err, f'exit status {proc.returncode}')}", "\n".join(other)
    return metrics, "\n".join(other)


# --- the table --------------------------------------------------------------------------


def fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_ratio(x: float) -> str:
    if x >= 0.095:
        return f"{x:.2f}x"
    return f"1/{1 / x:,.0f}x"


def summarize(outcomes: list[Outcome], metric: str) -> tuple[float | None, str]:
    """(median over the successful repeats, spread / failures, or why there is none)."""
    ok = [o[metric] for o in outcomes if isinstance(o, dict) and metric in o]
    failed = [o for o in outcomes if isinstance(o, str)]
    if not ok:
        return None, (failed[0] if failed else "n/a")
    med = statistics.median(ok)
    note = f"±{(max(ok) - min(ok)) / med / 2 * 100:.0f}%" if len(ok) > 1 and med else ""
    if failed:
        note = f"{note} ({len(failed)}/{len(outcomes)} failed)".strip()
    return med, note


def better(sec: Section, beamlet: float, other: float) -> float:
    """How many times better beamlet (asyncio) is than `other` (>1: beamlet wins)."""
    return beamlet / other if sec.higher_is_better else other / beamlet


def target_cell(goal: tuple[str, float] | None, x: float | None) -> str:
    if goal is None:
        return ""
    op, bound = goal
    if op == "~":
        return f"(~{bound:g}x expected)"
    if x is None:
        return f">= {bound:g}x: n/a"
    return f">= {bound:g}x: {'met' if x >= bound else 'MISSED'}"


def render(
    results: dict[str, dict[str, list[Outcome]]],
    systems: list[System],
    quick: bool,
    names: list[str],
) -> tuple[str, dict[str, float | None]]:
    """The table, and beamlet's ratio against each target row of section 1a."""
    by_key = {s.key: s for s in systems}
    width = 34
    head = (
        f"  {'system':<{width}}{'value':>10}  {'unit':<8}{'beamlet vs row':>15}  "
        f"{'target':<18}{'notes'}"
    )
    lines = [head, "  " + "-" * (len(head) + 8)]
    ratios: dict[str, float | None] = {}
    for sec in SECTIONS:
        if sec.workload not in names:
            continue
        res = results.get(sec.workload, {})
        sizes = (QUICK if quick else FULL)[sec.workload]
        lines.append(f"{sec.title.format(*sizes)}")
        ref, _ = summarize(res.get(REF, []), sec.ref_metric)
        for row in sec.rows:
            system = by_key.get(row.system)
            if system is None:
                continue
            label = row.label or system.label
            goal = sec.targets.get(row.system)
            if system.cmd is None:
                lines.append(
                    f"    {label:<{width - 2}}{'n/a':>10}  {'':<8}{'—':>15}  "
                    f"{target_cell(goal, None):<18}{system.why_not}"
                )
                if goal:
                    ratios[row.system] = None
                continue
            v, note = summarize(res.get(row.system, []), row.metric)
            if v is None:
                why = note.split(":")[0] if note.startswith(("error", "timeout")) else "n/a"
                lines.append(f"    {label:<{width - 2}}{why:>10}  {sec.unit:<8}{'—':>15}")
                if goal:
                    ratios[row.system] = None
                continue
            x = better(sec, ref, v) if ref else None
            if goal:
                ratios[row.system] = x
            cell = fmt_ratio(x) if x is not None else "—"
            if sec.note_metric:
                p90, _ = summarize(res.get(row.system, []), sec.note_metric)
                if p90 is not None:
                    note = f"p90 {fmt(p90)} {note}".strip()
            if sec.workload in ("call", "callc", "cast") and system.scale != 1:
                note = f"{note} (1/{system.scale} of the count)".strip()
            lines.append(
                f"    {label:<{width - 2}}{fmt(v):>10}  {sec.unit:<8}{cell:>15}  "
                f"{target_cell(goal, x):<18}{note}".rstrip()
            )
        if sec.workload == "call":
            checks = [
                o.get("monitor_alias")
                for o in res.get(REF, []) + res.get("beamlet-uvloop", [])
                if isinstance(o, dict)
            ]
            if checks:
                ok = all(c == 1.0 for c in checks)
                lines.append(
                    "    beamlet's call monitors the server with an alias (checked at run "
                    f"time): {'yes' if ok else 'NO'}"
                )
    errors = dict.fromkeys(
        f"  ! {' '.join(by_key[key].label.split())}, {wl}: {o}"
        for wl, res in results.items()
        for key, outs in res.items()
        for o in outs
        if isinstance(o, str) and key in by_key
    )
    return "\n".join(lines + list(errors)), ratios


def summary(ratios: dict[str, float | None]) -> str:
    names = {"asyncio-future": "asyncio Future", "pykka": "Pykka", "otpylib": "otpylib"}
    parts = []
    for key, (_, bound) in SECTIONS[0].targets.items():
        if key not in ratios:
            continue
        x = ratios[key]
        if key == "beam-s1":
            parts.append(f"{fmt_ratio(x) if x else 'n/a'} the BEAM +S 1")
            continue
        verdict = "n/a" if x is None else ("met" if x >= bound else "MISSED")
        shown = fmt_ratio(x) if x is not None else "n/a"
        parts.append(f"{shown} {names[key]} (>= {bound:g}x: {verdict})")
    return "targets, beamlet sequential call on asyncio: " + "; ".join(parts)


def src_digest() -> str:
    """A hash of src/: other work in this checkout may change it mid-run."""
    h = hashlib.sha1()
    for f in sorted((ROOT / "src").rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:8]


def header(args: argparse.Namespace, info: dict[str, str], run_id: str, src: str) -> str:
    try:
        import uvloop

        uv = f"uvloop {uvloop.__version__}"
    except ImportError:
        uv = "no uvloop"
    try:
        git = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        git = ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    libs = ", ".join(info[k] for k in ("pykka", "otpylib") if k in info)
    return (
        f"beamlet OTP behaviour benchmarks, run {run_id} "
        f"({'quick' if args.quick else 'full'} sizes, median of {args.repeat}, "
        f"beamlet @ {git or '?'}, src {src})\n"
        f"machine: {os.cpu_count()} CPUs {platform.machine()}, {platform.system()} "
        f"{platform.release()}, load avg {load} | Python {platform.python_version()}, {uv}"
        f"{' | ' + libs if libs else ''} | {info.get('beam', 'BEAM not run')}\n"
        "Each system in a fresh subprocess, systems interleaved; ratios compare with beamlet "
        "on asyncio in this run (>1x: beamlet is better).\n"
    )


def profile(timeout: float, quick: bool) -> str:
    """A step-by-step cost breakdown of beamlet's call, then a cProfile of its loop."""
    k = 20_000 if quick else 50_000
    out = []
    for workload in ("breakdown", "profile"):
        cmd = [sys.executable, "-m", "bench.behaviours_beamlet", "asyncio", workload, str(k)]
        outcome, text = run_one(cmd, timeout)
        out.append(f"{workload}: {outcome}" if isinstance(outcome, str) else text)
    return "\n\ncProfile of beamlet's sequential GenServer.call loop (asyncio): ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a sanity run")
    ap.add_argument("--repeat", type=int, help="runs per system, median shown (3; quick: 1)")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    ap.add_argument(
        "--systems",
        default="",
        help="comma-separated keys (default all): beamlet-asyncio, beamlet-uvloop, "
        "asyncio-future, asyncio-future-uvloop, asyncio-queue, pykka, otpylib, beam-s1",
    )
    ap.add_argument("--timeout", type=float, help="seconds per subprocess (180; quick: 60)")
    ap.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="print a cost breakdown and a cProfile of beamlet's call loop (auto: when the "
        "asyncio target is missed)",
    )
    ap.add_argument("--json", type=Path, help="also write every raw result to this file")
    args = ap.parse_args()
    args.repeat = args.repeat or (1 if args.quick else 3)
    # `./dev bench` passes the same --only/--systems to every suite: names that belong
    # to another suite are skipped here, not an error.
    names = [w.strip() for w in args.only.split(",") if w.strip()]
    if bad := [w for w in names if w not in WORKLOADS]:
        print(f"bench_behaviours: not mine, skipped: --only {','.join(bad)}", file=sys.stderr)
        names = [w for w in names if w in WORKLOADS]
    if not names:
        print(f"bench_behaviours: no workload selected (mine: {', '.join(WORKLOADS)})")
        return 0
    all_keys = {r.system for s in SECTIONS for r in s.rows}
    want = {k.strip() for k in args.systems.split(",") if k.strip()} or all_keys
    if bad := sorted(want - all_keys):
        print(f"bench_behaviours: not mine, skipped: --systems {','.join(bad)}", file=sys.stderr)
        want &= all_keys
    want.add(REF)  # every ratio needs it
    timeout = args.timeout or (60.0 if args.quick else 180.0)
    run_id = time.strftime("%Y-%m-%d %H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="beamlet-behaviours-") as tmp:
        systems, info = make_systems(Path(tmp), want)
        src = src_digest()
        print(header(args, info, run_id, src), flush=True)
        results: dict[str, dict[str, list[Outcome]]] = {w: {} for w in names}
        runnable = [s for s in systems if s.cmd is not None]
        for rep in range(args.repeat):
            for name in names:
                todo = [s for s in runnable if name in s.workloads]
                shift = rep % len(todo) if todo else 0
                for s in todo[shift:] + todo[:shift]:
                    sizes = sizes_for(s, name, args.quick)
                    t0 = time.perf_counter()
                    assert s.cmd is not None
                    outcome, _ = run_one([*s.cmd, name, *map(str, sizes)], timeout)
                    results[name].setdefault(s.key, []).append(outcome)
                    status = outcome if isinstance(outcome, str) else "ok"
                    print(
                        f"  .. #{rep + 1} {name} {s.key}: {status} "
                        f"({time.perf_counter() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
        table, ratios = render(results, systems, args.quick, names)
        print(table)
        if "call" in names:
            print("\n" + summary(ratios))
        if (now := src_digest()) != src:
            print(f"! src/ changed during this run ({src} -> {now}): rows may mix versions")
        missed = (ratios.get("asyncio-future") or 0.0) < 1.5
        if args.profile == "always" or (args.profile == "auto" and "call" in names and missed):
            print("\n" + profile(timeout, args.quick), flush=True)
        if args.json:
            args.json.write_text(
                json.dumps({"run": run_id, "info": info, "results": results}, indent=1)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
