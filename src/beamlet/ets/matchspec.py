"""Match specifications: Erlang's `[(Head, Guards, Body)]`, compiled to Python closures.

The shape is Erlang's, with Python tuples for Erlang tuples, lists for lists and
`Atom("$1")`, `Atom("_")` for match variables and the wildcard:

    [((Atom("$1"), Atom("$2")), [(Atom(">"), Atom("$2"), 3)], [Atom("$1")])]

is `[{{'$1','$2'}, [{'>','$2',3}], ['$1']}]`. In guards and bodies `((a, b),)` builds a
tuple (Erlang's `{{A, B}}`), `(Atom("const"), X)` is the literal X, `Atom("$_")` the
whole object and `Atom("$$")` the list of the head's variables. A guard that raises
fails its clause; a body that raises yields the atom `EXIT`, as on the BEAM.
`beamlet.ets.query` writes the same thing with Python operators.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from beamlet._core import Atom, ImproperList, Pid, Ref
from beamlet._core import current_process as get_current
from beamlet.ets.keys import SAFE, canon, exact_eq, order_key
from beamlet.ets.table import EtsError, Tid

__all__ = ["Clause", "compile_spec", "compile_pattern", "is_ground", "var_number"]

WILD: Final = Atom("_")
ALL: Final = Atom("$_")
ALL_VARS: Final = Atom("$$")
CONST: Final = Atom("const")
EXIT: Final = Atom("EXIT")

Bindings = dict[int, Any]
Matcher = Callable[[Any, Bindings], bool]
Expr = Callable[[Bindings, Any], Any]


class _Fail(Exception):
    pass


def var_number(a: Any) -> int | None:
    """N for the match variable `Atom("$N")`, else None."""
    if type(a) is Atom and len(a) > 1 and a[0] == "$":
        digits = str.__str__(a)[1:]
        if digits.isdigit() and digits.isascii() and int(digits) <= 100_000_000:
            return int(digits)
    return None


def _is_list(x: Any) -> bool:
    return type(x) is list or getattr(x, "_erlang_list", False)


def _is_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and not getattr(x, "_erlang_list", False)


def is_ground(p: Any) -> bool:
    """True if the pattern `p` has no variable and no wildcard (a literal)."""
    if type(p) is Atom:
        return p != WILD and var_number(p) is None
    if _is_tuple(p) or type(p) is list:
        return all(is_ground(x) for x in p)
    if type(p) is dict:
        return all(is_ground(v) for v in p.values())
    return True


def _match_true(x: Any, b: Bindings) -> bool:
    return True


def compile_pattern(p: Any, vars_: set[int]) -> Matcher:
    """A matcher for the pattern `p` (adding its variables to `vars_`)."""
    t = type(p)
    if t is Atom:
        if p == WILD:
            return _match_true
        n = var_number(p)
        if n is not None:
            vars_.add(n)

            def match_var(x: Any, b: Bindings) -> bool:
                if n in b:
                    return exact_eq(b[n], x)
                b[n] = x
                return True

            return match_var
    if _is_tuple(p) or t is list:
        size = len(p)
        subs = [(i, compile_pattern(q, vars_)) for i, q in enumerate(p)]
        subs = [(i, f) for i, f in subs if f is not _match_true]
        want_tuple = t is not list

        def match_seq(x: Any, b: Bindings) -> bool:
            if (_is_tuple(x) if want_tuple else _is_list(x)) and len(x) == size:
                return all(f(x[i], b) for i, f in subs)
            return False

        return match_seq
    if t is dict:
        items = [(canon(k), k, compile_pattern(v, vars_)) for k, v in p.items()]

        def match_map(x: Any, b: Bindings) -> bool:
            if type(x) is not dict:
                return False
            for ck, k, f in items:
                if k not in x:
                    return False
                if not any(canon(k2) == ck and f(v2, b) for k2, v2 in x.items() if k2 == k):
                    return False
            return True

        return match_map
    if t in SAFE:
        return lambda x, b: x is p or (type(x) is t and x == p)
    c = canon(p)
    return lambda x, b: x is p or canon(x) == c


# --- guard and body expressions ------------------------------------------------------


def _num(x: Any) -> Any:
    if type(x) is bool or not isinstance(x, int | float):
        raise _Fail
    return x


def _int(x: Any) -> int:
    if type(x) is bool or not isinstance(x, int):
        raise _Fail
    return int(x)


def _bool(x: Any) -> bool:
    if type(x) is not bool:
        raise _Fail
    return x


def _div(a: Any, b: Any) -> int:
    a, b = _int(a), _int(b)
    if b == 0:
        raise _Fail
    q: int = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _rem(a: Any, b: Any) -> int:
    return _int(a) - _div(a, b) * _int(b)


def _fdiv(a: Any, b: Any) -> float:
    a, b = _num(a), _num(b)
    if b == 0:
        raise _Fail
    r: float = a / b
    return r


def _round(x: Any) -> int:
    x = _num(x)
    r: int = math.floor(abs(x) + 0.5)
    return r if x >= 0 else -r


def _element(n: Any, t: Any) -> Any:
    if not _is_tuple(t) or type(n) is not int or not 1 <= n <= len(t):
        raise _Fail
    return t[n - 1]


def _hd(x: Any) -> Any:
    if not _is_list(x) or not x:
        raise _Fail
    return x[0]


def _tl(x: Any) -> Any:
    if not _is_list(x) or not x:
        raise _Fail
    return list(x[1:])


def _length(x: Any) -> int:
    if not _is_list(x):
        raise _Fail
    return len(x)


def _size(x: Any) -> int:
    if _is_tuple(x):
        return len(x)
    if type(x) is bytes:
        return len(x)
    if type(x) is str:
        return len(x.encode())
    raise _Fail


def _byte_size(x: Any) -> int:
    if type(x) is bytes:
        return len(x)
    if type(x) is str:
        return len(x.encode())
    raise _Fail


def _tuple_size(x: Any) -> int:
    if not _is_tuple(x):
        raise _Fail
    return len(x)


def _map_get(k: Any, m: Any) -> Any:
    if type(m) is not dict:
        raise _Fail
    for k2, v in m.items():
        if exact_eq(k2, k):
            return v
    raise _Fail


def _is_map_key(k: Any, m: Any) -> bool:
    if type(m) is not dict:
        raise _Fail
    return any(exact_eq(k2, k) for k2 in m)


def _cmp(a: Any, b: Any) -> int:
    ka, kb = order_key(a), order_key(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


def _self() -> Pid:
    p = get_current()
    if p is None:
        raise _Fail
    pid: Pid = p.pid
    return pid


def _node() -> Atom:
    p = get_current()
    if p is None:
        raise _Fail
    name: Atom = p.node.name
    return name


def _is_record(x: Any, name: Any, arity: Any) -> bool:
    return _is_tuple(x) and len(x) == arity and len(x) > 0 and exact_eq(x[0], name)


def _is_atom(x: Any) -> bool:
    return type(x) is Atom or type(x) is bool or x is None


_FUNCS: Final[dict[tuple[str, int], Callable[..., Any]]] = {
    ("is_atom", 1): _is_atom,
    ("is_boolean", 1): lambda x: type(x) is bool,
    ("is_float", 1): lambda x: type(x) is float,
    ("is_integer", 1): lambda x: isinstance(x, int) and type(x) is not bool,
    ("is_number", 1): lambda x: isinstance(x, int | float) and type(x) is not bool,
    ("is_list", 1): _is_list,
    ("is_tuple", 1): _is_tuple,
    ("is_map", 1): lambda x: type(x) is dict,
    ("is_binary", 1): lambda x: type(x) is bytes or type(x) is str,
    ("is_bitstring", 1): lambda x: type(x) is bytes or type(x) is str,
    ("is_pid", 1): lambda x: type(x) is Pid,
    ("is_reference", 1): lambda x: type(x) is Ref or type(x) is Tid,
    ("is_function", 1): callable,
    ("is_record", 3): _is_record,
    ("+", 1): _num,
    ("-", 1): lambda a: -_num(a),
    ("+", 2): lambda a, b: _num(a) + _num(b),
    ("-", 2): lambda a, b: _num(a) - _num(b),
    ("*", 2): lambda a, b: _num(a) * _num(b),
    ("/", 2): _fdiv,
    ("div", 2): _div,
    ("rem", 2): _rem,
    ("band", 2): lambda a, b: _int(a) & _int(b),
    ("bor", 2): lambda a, b: _int(a) | _int(b),
    ("bxor", 2): lambda a, b: _int(a) ^ _int(b),
    ("bnot", 1): lambda a: ~_int(a),
    ("bsl", 2): lambda a, b: _int(a) << _int(b) if _int(b) >= 0 else _int(a) >> -_int(b),
    ("bsr", 2): lambda a, b: _int(a) >> _int(b) if _int(b) >= 0 else _int(a) << -_int(b),
    ("abs", 1): lambda a: abs(_num(a)),
    ("float", 1): lambda a: float(_num(a)),
    ("round", 1): _round,
    ("trunc", 1): lambda a: math.trunc(_num(a)),
    ("element", 2): _element,
    ("hd", 1): _hd,
    ("tl", 1): _tl,
    ("length", 1): _length,
    ("size", 1): _size,
    ("byte_size", 1): _byte_size,
    ("tuple_size", 1): _tuple_size,
    ("map_size", 1): lambda m: len(m) if type(m) is dict else _num(None),
    ("map_get", 2): _map_get,
    ("is_map_key", 2): _is_map_key,
    ("min", 2): lambda a, b: b if _cmp(b, a) < 0 else a,
    ("max", 2): lambda a, b: b if _cmp(b, a) > 0 else a,
    ("self", 0): _self,
    ("node", 0): _node,
    ("<", 2): lambda a, b: _cmp(a, b) < 0,
    (">", 2): lambda a, b: _cmp(a, b) > 0,
    ("=<", 2): lambda a, b: _cmp(a, b) <= 0,
    (">=", 2): lambda a, b: _cmp(a, b) >= 0,
    ("==", 2): lambda a, b: _cmp(a, b) == 0,
    ("/=", 2): lambda a, b: _cmp(a, b) != 0,
    ("=:=", 2): exact_eq,
    ("=/=", 2): lambda a, b: not exact_eq(a, b),
    ("not", 1): lambda a: not _bool(a),
    ("and", 2): lambda a, b: _bool(a) & _bool(b),
    ("or", 2): lambda a, b: _bool(a) | _bool(b),
    ("xor", 2): lambda a, b: _bool(a) ^ _bool(b),
}


def _bad(spec: Any, why: str) -> EtsError:
    return EtsError(2, f"not a valid match specification ({why}): {spec!r}", "match_spec")


def _const(v: Any) -> Expr:
    return lambda b, o: v


def compile_expr(e: Any, head_vars: set[int], spec: Any) -> Expr:
    """A guard or body expression as a function of (bindings, object)."""
    t = type(e)
    if t is Atom:
        if e == ALL:
            return lambda b, o: o
        if e == ALL_VARS:
            order = sorted(head_vars)
            return lambda b, o: [b[n] for n in order]
        n = var_number(e)
        if n is not None:
            if n not in head_vars:
                raise _bad(spec, f"the variable {e} is not bound in the head")
            return lambda b, o: b[n]
        return _const(e)
    if t is tuple:
        if len(e) == 1 and type(e[0]) is tuple:
            parts = [compile_expr(x, head_vars, spec) for x in e[0]]
            return lambda b, o: tuple([f(b, o) for f in parts])
        if e and type(e[0]) is Atom:
            op = str.__str__(e[0])
            if op == "const" and len(e) == 2:
                return _const(e[1])
            args = [compile_expr(x, head_vars, spec) for x in e[1:]]
            if op in ("andalso", "orelse") and len(args) == 2:
                x, y = args
                if op == "andalso":
                    return lambda b, o: _bool(y(b, o)) if _bool(x(b, o)) else False
                return lambda b, o: True if _bool(x(b, o)) else _bool(y(b, o))
            fn = _FUNCS.get((op, len(args)))
            if fn is None:
                raise _bad(spec, f"unknown function {op}/{len(args)}")
            if len(args) == 1:
                (a,) = args
                return lambda b, o: fn(a(b, o))
            if len(args) == 2:
                a1, a2 = args
                return lambda b, o: fn(a1(b, o), a2(b, o))
            return lambda b, o: fn(*[f(b, o) for f in args])
        raise _bad(spec, f"a tuple in an expression must be {{{{...}}}} or a call: {e!r}")
    if t is list:
        parts = [compile_expr(x, head_vars, spec) for x in e]
        return lambda b, o: [f(b, o) for f in parts]
    if t is dict:
        kvs = [
            (compile_expr(k, head_vars, spec), compile_expr(v, head_vars, spec))
            for k, v in e.items()
        ]
        return lambda b, o: {k(b, o): v(b, o) for k, v in kvs}
    if t is ImproperList:
        raise _bad(spec, "improper lists are not supported in expressions")
    return _const(e)


class Clause:
    """One compiled `(head, guards, body)`."""

    __slots__ = ("body", "guards", "head", "key", "match", "range", "returns_object", "simple")

    def __init__(self, head: Any, guards: Any, body: Any, spec: Any, kp: int) -> None:
        if type(guards) is not list or type(body) is not list:
            raise _bad(spec, "guards and body must be lists")
        if not body:
            raise _bad(spec, "the body is empty")
        head_vars: set[int] = set()
        self.head = head
        self.match = compile_pattern(head, head_vars)
        self.guards = [compile_expr(g, head_vars, spec) for g in guards]
        self.body = [compile_expr(x, head_vars, spec) for x in body]
        self.returns_object = len(body) == 1 and body[0] == ALL
        self.simple = not self.guards and self.returns_object
        # A literal key in the head: the clause can only match objects with that key.
        self.key: tuple[Any] | None = None
        if _is_tuple(head) and len(head) > kp and is_ground(head[kp]):
            self.key = (head[kp],)
        # The order keys an ordered_set object must lie between (inclusive) to match.
        self.range: tuple[Any, Any] | None = None
        if _is_tuple(head) and len(head) > kp:
            self.range = key_range(head[kp], guards)

    def run(self, obj: Any) -> Any:
        """The body's value for `obj`, or `_NO` if the head or a guard does not match."""
        b: Bindings = {}
        if not self.match(obj, b):
            return _NO
        for g in self.guards:
            try:
                if g(b, obj) is not True:
                    return _NO
            except Exception:
                return _NO
        if self.returns_object:
            return obj
        try:
            r: Any = None
            for f in self.body:
                r = f(b, obj)
            return r
        except Exception:
            return EXIT


class _Top:
    """Greater than every order key (the open end of a prefix range)."""

    __slots__ = ()

    def __lt__(self, other: Any) -> bool:
        return False

    def __gt__(self, other: Any) -> bool:
        return True


TOP: Final = _Top()
_FLIP: Final = {"<": ">", ">": "<", "=<": ">=", ">=": "=<", "==": "=="}


def _literal(e: Any) -> tuple[Any] | None:
    """(value,) if the guard operand `e` is a constant, else None."""
    if type(e) is tuple and len(e) == 2 and e[0] == CONST:
        return (e[1],)
    if type(e) is Atom and (var_number(e) is not None or e in (ALL, ALL_VARS)):
        return None
    if type(e) in (int, float, bytes, str, Atom):
        return (e,)
    return None


def _conjuncts(guards: list[Any]) -> list[Any]:
    out = []
    stack = list(guards)
    while stack:
        g = stack.pop()
        if type(g) is tuple and len(g) == 3 and g[0] in (Atom("andalso"), Atom("and")):
            stack.extend(g[1:])
        else:
            out.append(g)
    return out


def key_range(k: Any, guards: list[Any]) -> tuple[Any, Any] | None:
    """Inclusive order-key bounds implied by the head's key pattern `k` and the guards
    (a literal key, a tuple key with a literal prefix, or a key variable compared with
    constants), or None when every key may match."""
    try:
        if is_ground(k):
            ok = order_key(k)
            return (ok, ok)
        if _is_tuple(k) and k and is_ground(k[0]):
            prefix = []
            for x in k:
                if not is_ground(x):
                    break
                prefix.append(order_key(x))
            return ((6, len(k), tuple(prefix)), (6, len(k), (*prefix, TOP)))
        n = var_number(k)
        if n is None:
            return None
        lo: Any = None
        hi: Any = None
        for g in _conjuncts(guards):
            if type(g) is not tuple or len(g) != 3 or type(g[0]) is not Atom:
                continue
            op, a, b = str.__str__(g[0]), g[1], g[2]
            if op not in _FLIP:
                continue
            if var_number(b) == n and type(b) is Atom:
                op, a, b = _FLIP[op], b, a
            if not (type(a) is Atom and var_number(a) == n):
                continue
            c = _literal(b)
            if c is None:
                continue
            ok = order_key(c[0])
            if op in (">", ">=", "==") and (lo is None or ok > lo):
                lo = ok
            if op in ("<", "=<", "==") and (hi is None or ok < hi):
                hi = ok
        if lo is None and hi is None:
            return None
        return (lo, hi)
    except (TypeError, ValueError):
        return None


_NO: Final = object()
NO_MATCH: Final = _NO


def compile_spec(spec: Any, kp: int) -> list[Clause]:
    """Compile a match specification for a table whose key is at index `kp`."""
    if type(spec) is not list:
        raise _bad(spec, "a match specification is a list of (head, guards, body)")
    clauses = []
    for c in spec:
        if type(c) is not tuple or len(c) != 3:
            raise _bad(spec, f"a clause is a (head, guards, body) tuple, not {c!r}")
        clauses.append(Clause(c[0], c[1], c[2], spec, kp))
    return clauses
