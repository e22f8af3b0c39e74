"""The Python functions other nodes may call as `module:function` (rpc, erpc, spawn).

A beamlet node has no Erlang modules: what `rpc:call(py@host, M, F, A)` runs is the
function registered under `M:F` with `register_function` (or, with `allow_import`, the
attribute `F` of the Python module `M`), plus a few BIFs that Erlang tools call on every
node.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from beamlet.distribution import etf


class Undefined(Exception):
    """No function is registered under module:name."""


class ErlangError(Exception):
    """Raised by a function called from another node to fail with an Erlang error
    term: the caller sees `error(reason)` (erpc) or `{badrpc, {'EXIT', {Reason, []}}}`
    (rpc), as for an Erlang BIF's `badarg`."""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class FunctionRegistry:
    """The functions of one distributed node, by `(module, name)`."""

    def __init__(self, *, allow_import: bool = False) -> None:
        self.allow_import = allow_import
        self.functions: dict[tuple[str, str], Callable[..., Any]] = {}

    def register(self, module: str, name: str, fn: Callable[..., Any]) -> None:
        """Make `fn` callable from other nodes as `module:name` (rpc, erpc, spawn).

        `fn` may be a plain function or an async one; it runs in a fresh process of this
        node, so it may use the process API (`self()`, `receive`, ...)."""
        if not callable(fn):
            raise TypeError(f"register_function needs a callable, not {fn!r}")
        self.functions[(str(module), str(name))] = fn

    def unregister(self, module: str, name: str) -> bool:
        return self.functions.pop((str(module), str(name)), None) is not None

    def lookup(self, module: Any, name: Any) -> Callable[..., Any] | None:
        key = (_text(module), _text(name))
        fn = self.functions.get(key)
        if fn is None and self.allow_import and not key[1].startswith("_"):
            try:
                fn = getattr(importlib.import_module(key[0]), key[1], None)
            except ImportError:
                fn = None
        return fn if callable(fn) else None

    async def run(self, module: Any, name: Any, args: list[Any]) -> Any:
        """Call the function registered as `module:name` with `args`, awaiting it if it is
        async. Raises `Undefined` when there is none."""
        fn = self.lookup(module, name)
        if fn is None:
            raise Undefined
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result


def runner(fn: Callable[..., Any]) -> Callable[[list[Any]], Coroutine[Any, Any, None]]:
    """The body of a process that runs `fn(*args)` (awaited if async) for another node,
    named after `fn` (process labels show it)."""

    async def run(args: list[Any]) -> None:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result

    run.__qualname__ = getattr(fn, "__qualname__", None) or type(fn).__name__
    run.__module__ = getattr(fn, "__module__", None) or run.__module__
    return run


def arglist(args: Any) -> list[Any] | None:
    """Erlang argument lists arrive as lists, or as charlists when all are small ints."""
    if type(args) is list:
        return args
    if type(args) is etf.Charlist:
        return list(args)
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
