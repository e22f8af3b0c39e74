"""Matchers for selective receive (docs/semantics.md §2.4).

A pattern is one of:

* `ANY` — matches every message;
* a class — matches instances (`receive(Down)`);
* a tuple — matches a tuple of the same length whose items match item by item
  (`receive(("reply", ref, ANY))`);
* a dataclass instance with `ANY` (or other patterns) in some fields — matches instances
  of that class field by field (`receive(Down(ref, ANY, ANY, ANY))`);
* a callable that is not a class — a predicate (`receive(lambda m: m > 3)`);
* anything else — matches a message equal to it (atoms only equal atoms).

Predicates must be pure: a message they reject is never shown to them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

__all__ = ["ANY", "compile_patterns"]

Matcher = Callable[[Any], bool]


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY"


ANY: Final[Any] = _Any()


def _match_any(m: Any) -> bool:
    return True


def compile_pattern(pat: Any) -> Matcher:
    """Turn one pattern into a predicate."""
    if pat is ANY:
        return _match_any
    if isinstance(pat, type):
        return lambda m: isinstance(m, pat)
    if dataclasses.is_dataclass(pat) and _has_subpatterns(pat):
        cls = type(pat)
        fields = [
            (f.name, compile_pattern(getattr(pat, f.name)))
            for f in dataclasses.fields(pat)
            if getattr(pat, f.name) is not ANY
        ]
        return lambda m: type(m) is cls and all(f(getattr(m, name)) for name, f in fields)
    if type(pat) is tuple:
        n = len(pat)
        items = [(i, compile_pattern(p)) for i, p in enumerate(pat) if p is not ANY]
        return lambda m: type(m) is tuple and len(m) == n and all(f(m[i]) for i, f in items)
    if callable(pat):
        return pat  # type: ignore[no-any-return]
    return lambda m: type(m) is type(pat) and bool(m == pat)


def _has_subpatterns(pat: Any) -> bool:
    """True if a dataclass instance holds ANY (or a class/predicate) in a field."""
    for f in dataclasses.fields(pat):
        v = getattr(pat, f.name)
        if v is ANY or isinstance(v, type) or (type(v) is tuple and _tuple_has_any(v)):
            return True
    return False


def _tuple_has_any(t: tuple[Any, ...]) -> bool:
    return any(v is ANY or isinstance(v, type) for v in t)


def compile_patterns(patterns: tuple[Any, ...]) -> Matcher | None:
    """One predicate for a receive with several alternatives; None means "any message"."""
    if not patterns:
        return None
    if len(patterns) == 1:
        pat = patterns[0]
        if pat is ANY:
            return None
        if callable(pat) and not isinstance(pat, type):
            return pat  # type: ignore[no-any-return]
        return compile_pattern(pat)
    fs = [compile_pattern(p) for p in patterns]
    return lambda m: any(f(m) for f in fs)
