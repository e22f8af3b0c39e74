"""Fuzz and differential harnesses for the ETF codec (`beamlet.distribution.etf`).

    python -m bench.fuzz_etf --seconds 600              # fuzz the decoder for 10 minutes
    python -m bench.fuzz_etf --differential 100000      # random terms through erl and back
    python -m bench.fuzz_etf --differential 20000 --erl "$BEAMLET_ERL2"   # another OTP

The fuzzer feeds the decoder (every `CodecOptions` preset, with and without `max_depth`)
with random terms, structural mutations of them (bytes flipped, tags and length fields
overwritten, ranges cut, duplicated or spliced, truncations) and hostile shapes (deep
nesting, nested list tails, hash-flooding keys, compression bombs, many atoms). It counts
exceptions other than `DecodeError` (the only one allowed), inputs taking more than 1 s
(hangs), decoded terms that do not re-encode, the slowest input per byte, and the peak
Python memory per input byte (tracemalloc, on a sample of the inputs and on every hostile
shape). The differential run encodes random terms (maps Python cannot hold as a dict
included), has one `erl` decode them with `binary_to_term` and re-encode them with
`term_to_binary` (OTP's default, `[compressed]`, `[{minor_version, 2}]`), and checks that
each decodes back `=:=` to the original and re-encodes byte-identically.
The tests run both for a few seconds (tests/distribution/test_codec_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from beamlet._core.terms import Atom, ImproperList, Pid, Ref
from beamlet.distribution import etf
from beamlet.distribution.etf import (
    BitString,
    Charlist,
    CodecOptions,
    DecodeError,
    ErlMap,
    Export,
    FrozenList,
    FrozenMap,
    Port,
    decode,
    encode,
)

OPTIONS: list[tuple[str, CodecOptions]] = [
    ("erlang", etf.DEFAULT_OPTIONS),
    ("elixir", etf.ELIXIR),
    ("lossless", etf.LOSSLESS),
]
HANG_SECONDS = 1.0


def same(a: Any, b: Any) -> bool:
    """Erlang's `=:=` on two terms (through the codec's canonical form)."""
    return etf._canon(a, 0) == etf._canon(b, 0)


# ------------------------------------------------------------------ random terms

_NODES = [Atom("a@b"), Atom("py@127.0.0.1"), Atom("nonode@nohost")]
# Keys that are distinct Erlang terms but equal in Python, in groups.
_CLASHING_KEYS: list[list[Any]] = [
    [1, 1.0, True],
    [0, 0.0, False],
    [(1,), (True,), (1.0,)],
    [FrozenList([1]), FrozenList([1.0])],
    [2, 2.0],
]


def random_atom(rng: random.Random) -> Atom:
    kind = rng.randrange(10)
    if kind == 0:
        return Atom("x" * rng.choice([0, 1, 254, 255]))
    alphabet = "abcxyz_@" if kind < 7 else "aé✓日ü"
    return Atom("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9))))


def random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(17)
    if kind == 0:
        return rng.randrange(256)
    if kind == 1:
        return rng.randrange(-(2**31), 2**31)
    if kind == 2:
        return rng.getrandbits(rng.choice([33, 64, 200, 2100])) * rng.choice([1, -1])
    if kind == 3:
        return rng.choice([rng.uniform(-1e9, 1e9), 0.0, -0.0, 5e-324, 1e308, 1.5])
    if kind in (4, 5):
        return random_atom(rng)
    if kind == 6:
        return rng.choice([True, False, None])
    if kind == 7:
        return rng.randbytes(rng.choice([0, 1, 5, 300]))
    if kind == 8:
        return "".join(rng.choice("ab é✓日") for _ in range(rng.randrange(6)))
    if kind == 9:
        return BitString(rng.randbytes(rng.randrange(1, 4)), rng.randrange(1, 8))
    if kind == 10:
        return Pid(
            rng.choice(_NODES), rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)
        )
    if kind == 11:
        words = tuple(rng.getrandbits(32) for _ in range(rng.choice([1, 3, 5])))
        return Ref(rng.choice(_NODES), words, rng.getrandbits(32))
    if kind == 12:
        return Port(rng.choice(_NODES), rng.choice([5, 2**40]), rng.getrandbits(32))
    if kind == 13:
        return Export(random_atom(rng), random_atom(rng), rng.randrange(256))
    if kind == 14:
        return Charlist("".join(rng.choice("abé\x00\xff✓日") for _ in range(rng.randrange(1, 6))))
    if kind == 15:
        return [rng.randrange(256) for _ in range(rng.randrange(1, 5))]  # a string to erl
    return ()


def random_key(rng: random.Random, depth: int) -> Any:
    # A map key: hashable (lists and maps inside keys are FrozenList/FrozenMap).
    kind = rng.randrange(8)
    if kind == 0 and depth < 3:
        return tuple(random_key(rng, depth + 1) for _ in range(rng.randrange(3)))
    if kind == 1 and depth < 3:
        return FrozenList(random_key(rng, depth + 1) for _ in range(rng.randrange(3)))
    if kind == 2 and depth < 3:
        return FrozenMap({random_atom(rng): random_key(rng, depth + 1)})
    if kind == 3:
        return rng.choice(rng.choice(_CLASHING_KEYS))
    value = random_scalar(rng)
    if type(value) is list:
        return FrozenList(value)
    if type(value) is float and value == 0.0:
        return 0.0  # -0.0 and 0.0: one key for OTP 25/26, two for OTP 27+
    return value


def random_map(rng: random.Random, depth: int) -> Any:
    pairs: list[tuple[Any, Any]] = []
    seen: set[bytes] = set()
    for _ in range(rng.randrange(6)):
        # Now and then a whole group of keys that only Erlang tells apart.
        clash = rng.randrange(5) == 0
        keys = list(rng.choice(_CLASHING_KEYS)) if clash else [random_key(rng, 0)]
        for key in keys:
            c = etf._canon(key, 0)
            if c not in seen:
                seen.add(c)
                pairs.append((key, random_term(rng, depth + 1)))
    try:
        d = dict(pairs)
    except TypeError:
        d = {}
    if len(d) == len(pairs):
        return d
    return ErlMap(pairs)


def random_term(rng: random.Random, depth: int = 0) -> Any:
    """A random term covering every type the codec knows, nested up to ~5 deep."""
    kind = rng.randrange(12 if depth < 5 else 1)
    if kind in (0, 1, 2, 3):
        return random_scalar(rng)
    if kind in (4, 5):
        return [random_term(rng, depth + 1) for _ in range(rng.randrange(6))]
    if kind in (6, 7):
        return tuple(random_term(rng, depth + 1) for _ in range(rng.randrange(6)))
    if kind in (8, 9):
        return random_map(rng, depth)
    if kind == 10:
        items = tuple(random_term(rng, depth + 1) for _ in range(rng.randrange(1, 4)))
        tail = random_scalar(rng)
        while isinstance(tail, list | Charlist):
            tail = random_scalar(rng)
        return ImproperList(items, tail)
    return random_term(rng, depth + 1)


# --------------------------------------------------------------------- mutations

_TAGS = bytes([70, 77, 80, 82, 88, 89, 90, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
               108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121])  # fmt: skip
_LENGTHS = [0, 1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1]


def mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """One structural mutation of `data` (`other`: another input, for splicing)."""
    b = bytearray(data)
    n = len(b)
    kind = rng.randrange(9)
    if kind == 0 and n > 1:  # flip bits
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(1, n)] ^= 1 << rng.randrange(8)
    elif kind == 1 and n > 1:  # a tag
        b[rng.randrange(1, n)] = rng.choice(_TAGS)
    elif kind == 2 and n > 5:  # a length field
        i = rng.randrange(1, n - 4)
        b[i : i + 4] = rng.choice(_LENGTHS).to_bytes(4, "big")
    elif kind == 3 and n > 2:  # truncate
        del b[rng.randrange(1, n) :]
    elif kind == 4 and n > 2:  # cut a range
        i = rng.randrange(1, n)
        del b[i : i + rng.randrange(1, 16)]
    elif kind == 5 and n > 2:  # duplicate a range
        i = rng.randrange(1, n)
        j = min(n, i + rng.randrange(1, 64))
        b[i:i] = b[i:j] * rng.randrange(1, 50)
    elif kind == 6 and n > 2:  # splice another input in
        i = rng.randrange(1, n)
        b[i:] = other[rng.randrange(1, max(2, len(other))) :]
    elif kind == 7:  # wrap in containers
        wrap = rng.choice([b"h\x01", b"l\x00\x00\x00\x01", b"t\x00\x00\x00\x01"])
        count = rng.choice([1, 10, 200])
        b[1:1] = wrap * count
    else:  # random bytes in
        i = rng.randrange(1, max(2, n))
        b[i:i] = rng.randbytes(rng.randrange(1, 8))
    return bytes(b)


def hostile_inputs(scale: float = 1.0) -> Iterator[tuple[str, bytes]]:
    """The shapes that once stalled, exhausted or crashed the decoder (issue 10)."""
    n = int(40_000 * scale)
    yield "nested list tails", b"\x83" + b"l\x00\x00\x00\x01a\x01" * n + b"j"
    yield "nested lists (elements)", b"\x83" + b"l\x00\x00\x00\x01" * n + b"j" * (n + 1)
    yield "deep tuple (control)", b"\x83" + b"h\x01" * int(250_000 * scale) + b"a\x01"
    flood = b"".join(etf.encode_body(i * (2**61 - 1)) + b"a\x01" for i in range(n))
    yield "hash flood map", b"\x83t" + n.to_bytes(4, "big") + flood
    key = b"h\x01" * int(5_000 * scale) + b"a\x00"
    yield "deep map key", b"\x83t\x00\x00\x00\x01" + key + b"a\x01"
    size = int(16 * 1024 * 1024 * scale)
    body = b"l" + (size - 6).to_bytes(4, "big") + b"j" * (size - 5)
    yield "compression bomb", b"\x83P" + size.to_bytes(4, "big") + zlib.compress(body, 9)
    k = max(70_000, n)
    atoms = b"".join(b"w\x07" + b"a%06d" % i for i in range(k))
    yield f"{k:,} distinct atoms", b"\x83l" + k.to_bytes(4, "big") + atoms + b"j"
    yield "empty maps", b"\x83l" + n.to_bytes(4, "big") + b"t\x00\x00\x00\x00" * n + b"j"
    # #{[97] => 1, "a" => 2}: one Erlang term twice, as LIST_EXT and as STRING_EXT
    yield "lying map", b"\x83t\x00\x00\x00\x02l\x00\x00\x00\x01aaja\x01k\x00\x01aa\x02"
    yield "huge claims", b"\x83l\xff\xff\xff\xffh\xffi\xff\xff\xff\xff"


# ------------------------------------------------------------------------ fuzzing


@dataclass
class FuzzStats:
    inputs: int = 0
    decoded: int = 0
    decode_errors: int = 0
    failures: list[tuple[str, bytes]] = field(default_factory=list)
    hangs: list[tuple[float, bytes]] = field(default_factory=list)
    slowest_us_per_byte: float = 0.0
    peak_bytes_per_byte: float = 0.0
    peak_input: str = ""
    slowest_input: str = ""
    hostile: list[tuple[str, int, float, float, str]] = field(default_factory=list)
    last_seconds: float = 0.0  # of the last input checked
    last_peak: float = 0.0


def check_input(
    stats: FuzzStats, data: bytes, options: CodecOptions, max_depth: int | None, memory: bool
) -> str:
    """Decode one input, record what happened; return "ok", "error" or "FAIL".

    Only the decode is timed. Whatever decodes must re-encode, to the same term. With
    `memory`, the input is decoded a second time under tracemalloc for its peak.
    """
    stats.inputs += 1
    outcome = "FAIL"
    start = time.perf_counter()
    try:
        try:
            term = decode(data, options=options, max_depth=max_depth)
        finally:
            elapsed = time.perf_counter() - start
        stats.decoded += 1
        again = encode(term, options=options)
        if options is etf.DEFAULT_OPTIONS and not same(decode(again), term):
            raise AssertionError("re-encoded term decodes differently")
        del term
        outcome = "ok"
    except DecodeError:
        stats.decode_errors += 1
        outcome = "error"
    except Exception as exc:  # anything but DecodeError is a bug
        stats.failures.append((f"{type(exc).__name__}: {exc}"[:300], data[:2000]))
    if elapsed > HANG_SECONDS:
        stats.hangs.append((elapsed, data[:2000]))
    stats.last_seconds = elapsed
    if len(data) >= 1024 and elapsed * 1e6 / len(data) > stats.slowest_us_per_byte:
        stats.slowest_us_per_byte = elapsed * 1e6 / len(data)
        stats.slowest_input = f"{len(data)} bytes: {data[:24].hex()}"
    if memory:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        try:
            decode(data, options=options, max_depth=max_depth)
        except Exception:  # counted above
            pass
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        per_byte = stats.last_peak = peak / max(len(data), 64)
        if per_byte > stats.peak_bytes_per_byte:
            stats.peak_bytes_per_byte = per_byte
            stats.peak_input = f"{len(data)} bytes: {data[:24].hex()}"
    return outcome


def fuzz(seconds: float, seed: int = 0, hostile_scale: float = 1.0) -> FuzzStats:
    """Fuzz the decoder for `seconds` (plus the hostile shapes once)."""
    rng = random.Random(seed)
    stats = FuzzStats()
    for name, data in hostile_inputs(hostile_scale):
        for opt, options in OPTIONS[:1] + OPTIONS[2:]:
            opt_name = opt + (", max_depth 16" if name.startswith("deep tuple") else "")
            depth = etf.CONTROL_MAX_DEPTH if name.startswith("deep tuple") else None
            outcome = check_input(stats, data, options, depth, True)
            stats.hostile.append(
                (f"{name} ({opt_name})", len(data), stats.last_seconds, stats.last_peak, outcome)
            )
    corpus = [encode(random_term(rng)) for _ in range(200)]
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        _, options = OPTIONS[i % len(OPTIONS)]
        if i % 5 == 0:
            term = random_term(rng)
            data = encode(term, options=options, compressed=rng.random() < 0.2)
            corpus[rng.randrange(len(corpus))] = data
        else:
            data = rng.choice(corpus)
            for _ in range(rng.randrange(1, 4)):
                data = mutate(rng, data, rng.choice(corpus))
        max_depth = etf.CONTROL_MAX_DEPTH if i % 7 == 0 else None
        check_input(stats, data, options, max_depth, memory=i % 50 == 0)
    return stats


def print_fuzz(stats: FuzzStats, seconds: float) -> None:
    print(f"decoder fuzzing, {seconds:.0f} s")
    print(f"{'hostile input':<40} {'bytes':>11} {'decode s':>8} {'peak B/B':>9}  outcome")
    for name, size, elapsed, peak, outcome in stats.hostile:
        print(f"{name:<40} {size:>11,} {elapsed:>8.3f} {peak:>9.1f}  {outcome}")
    print(f"inputs tried                       {stats.inputs:>12,}")
    print(f"  decoded (and re-encoded)         {stats.decoded:>12,}")
    print(f"  DecodeError                      {stats.decode_errors:>12,}")
    print(f"exceptions other than DecodeError  {len(stats.failures):>12,}")
    print(f"hangs (> {HANG_SECONDS:.0f} s)                     {len(stats.hangs):>12,}")
    slowest = stats.slowest_us_per_byte
    print(f"slowest input (>= 1 KB), µs/byte   {slowest:>12.2f}  ({stats.slowest_input})")
    peak = stats.peak_bytes_per_byte
    print(f"peak memory per input byte         {peak:>12.1f}  ({stats.peak_input})")
    for reason, data in stats.failures[:10]:
        print(f"! {reason}\n  input: {data[:200].hex()}")


# ------------------------------------------------------------------ differential

ERL_SCRIPT = r"""
Hex = fun(B) -> binary:encode_hex(B) end,
{ok, In} = file:read_file(os:getenv("ETF_IN")),
Lines = binary:split(In, <<"\n">>, [global, trim_all]),
Row = fun(Line) ->
    case (catch binary_to_term(binary:decode_hex(Line))) of
        {'EXIT', _} -> <<"error\n">>;
        T -> [Hex(term_to_binary(T, [{minor_version, 2}])), $\t, Hex(term_to_binary(T)), $\t,
              Hex(term_to_binary(T, [compressed])), $\n]
    end
end,
ok = file:write_file(os:getenv("ETF_OUT"), [Row(L) || L <- Lines]),
halt().
"""


@dataclass
class DiffStats:
    terms: int = 0
    encodings: int = 0
    erlmaps: int = 0
    port_tags: int = 0
    mismatches: list[tuple[str, Any]] = field(default_factory=list)


def find_erl(erl: str | None = None) -> str | None:
    return erl or os.environ.get("ETF_ERL") or shutil.which("erl")


def run_erl(erl: str, wires: list[bytes]) -> list[list[bytes] | None]:
    """binary_to_term each wire in one erl; term_to_binary it 3 ways (None: rejected)."""
    with tempfile.TemporaryDirectory() as tmp:
        infile, outfile = Path(tmp) / "in", Path(tmp) / "out"
        infile.write_text("".join(w.hex() + "\n" for w in wires))
        env = dict(os.environ, ETF_IN=str(infile), ETF_OUT=str(outfile))
        subprocess.run(
            [erl, "-noshell", "-eval", ERL_SCRIPT],
            env=env,
            capture_output=True,
            timeout=600,
            check=True,
        )
        rows: list[list[bytes] | None] = []
        for line in outfile.read_text().splitlines():
            rows.append(None if line == "error" else [bytes.fromhex(c) for c in line.split("\t")])
    if len(rows) != len(wires):
        raise RuntimeError(f"erl answered {len(rows)} rows for {len(wires)} terms")
    return rows


def _contains(term: Any, kind: type) -> bool:
    stack = [term]
    while stack:
        x = stack.pop()
        if type(x) is kind:
            return True
        if isinstance(x, list | tuple):
            stack.extend(x)
        elif isinstance(x, dict | FrozenMap | ErlMap):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, ImproperList):
            stack.extend(x.items)
            stack.append(x.tail)
    return False


def differential(count: int, erl: str, seed: int = 0, batch: int = 5000) -> DiffStats:
    """Round-trip `count` random terms through erl; record every disagreement."""
    rng = random.Random(seed)
    stats = DiffStats()
    while stats.terms < count:
        terms = [random_term(rng) for _ in range(min(batch, count - stats.terms))]
        wires: list[bytes] = []
        for term in terms:
            wires.append(encode(term))
            wires.append(encode(term, compressed=True))
        rows = run_erl(erl, wires)
        for i, term in enumerate(terms):
            stats.terms += 1
            stats.erlmaps += _contains(term, ErlMap)
            for row in rows[2 * i : 2 * i + 2]:
                stats.encodings += 1
                if row is None:
                    stats.mismatches.append(("erl rejected our bytes", term))
                    continue
                v2, default, compressed = row
                if encode(decode(v2)) != v2:
                    if _contains(term, Port) and b"x" in v2:
                        # OTP 26+ writes every port as V4_PORT_EXT; we write a 32-bit id
                        # as NEW_PORT_EXT, as OTP 25 does. The same term either way.
                        stats.port_tags += 1
                    else:
                        stats.mismatches.append(("re-encoding erl's bytes differs", term))
                for wire in (v2, default, compressed):
                    if not same(decode(wire), term):
                        stats.mismatches.append(("decodes to another term (not =:=)", term))
    return stats


def print_differential(stats: DiffStats, erl: str, seconds: float) -> None:
    release = subprocess.run(
        [erl, "-noshell", "-eval", "io:put_chars(erlang:system_info(otp_release)), halt()."],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"differential against binary_to_term/term_to_binary, OTP {release}, {seconds:.0f} s")
    print(f"random terms                       {stats.terms:>12,}")
    print(f"  holding a map a dict cannot hold {stats.erlmaps:>12,}")
    print(f"encodings checked (x3 by erl)      {stats.encodings:>12,}")
    print(f"mismatches                         {len(stats.mismatches):>12,}")
    print(f"  (ports re-encoded as NEW_PORT_EXT, not V4_PORT_EXT: {stats.port_tags:,})")
    for reason, term in stats.mismatches[:10]:
        print(f"! {reason}: {term!r:.300}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.0, help="fuzz the decoder this long")
    parser.add_argument("--differential", type=int, default=0, help="terms to round-trip via erl")
    parser.add_argument("--erl", default=None, help="the erl to use (default: erl on PATH)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--hostile-scale", type=float, default=1.0, help="size of hostile inputs")
    args = parser.parse_args(argv)
    if not args.seconds and not args.differential:
        args.seconds, args.differential = 60.0, 10_000
    print(f"seed {args.seed}")
    failed = False
    if args.seconds:
        start = time.perf_counter()
        stats = fuzz(args.seconds, args.seed, args.hostile_scale)
        print_fuzz(stats, time.perf_counter() - start)
        failed |= bool(stats.failures or stats.hangs)
    if args.differential:
        erl = find_erl(args.erl)
        if erl is None:
            print("no erl: differential run skipped")
            return 1
        start = time.perf_counter()
        diff = differential(args.differential, erl, args.seed)
        print_differential(diff, erl, time.perf_counter() - start)
        failed |= bool(diff.mismatches)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
