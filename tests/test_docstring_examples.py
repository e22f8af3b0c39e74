"""Every docstring example of the public API runs as a test, and every public class and
function has one.

The public API is what `beamlet.__all__` exports plus every object named by a `::: dotted.path`
directive in docs/api/*.md (a module brings its `__all__`), and the public methods and
properties of those classes. Examples are the stdlib doctest format under a Google-style
`Examples:` heading (what mkdocstrings renders as code). The stdlib `doctest` parser and
`OutputChecker` do the work; the only glue is the execution: each example is compiled with
top-level `await` allowed, and a docstring's examples run in order as the first process of a
fresh node (`beamlet.run`), each awaited example under a timeout. A docstring whose examples
start their own node (`beamlet.run(main)`, no top-level `await`) runs as plain doctest.
Globals: `beamlet` is imported; the example imports everything else. ELLIPSIS is on.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import doctest
import importlib
import inspect
import io
import re
import traceback
import types
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import beamlet

ROOT = Path(__file__).resolve().parents[1]
API_DOCS = ROOT / "docs" / "api"
EXAMPLE_TIMEOUT = 10.0
OPTIONS = doctest.ELLIPSIS

# Public names that need no example of their own, with the reason.
NO_EXAMPLE_NEEDED: dict[str, str] = {
    "beamlet.testing.plugin": "a pytest plugin, configured rather than called: the example "
    "of beamlet.testing is a test it runs",
}

# Work in progress (issue 9), a ratchet: names still without an Examples: section, and
# docstrings whose examples do not run yet (fragments). Both lists may only shrink: a new
# public name needs an example, and a fixed docstring must leave the list.
TODO_NO_EXAMPLE: frozenset[str] = frozenset({})
TODO_FAILING: frozenset[str] = frozenset({})


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _documented_roots() -> list[tuple[str, list[str] | None]]:
    """(dotted name, members) for `beamlet.__all__` and each `::: name` of docs/api/*.md;
    members is the directive's explicit `members: [...]` list, else None (the `__all__`)."""
    roots: list[tuple[str, list[str] | None]] = [(f"beamlet.{n}", None) for n in beamlet.__all__]
    for page in sorted(API_DOCS.glob("*.md")):
        for match in re.finditer(r"^::: ([\w.]+)[ \t]*\n((?:[ \t]+.*\n)*)", page.read_text(), re.M):
            listed = re.search(r"members: \[(.*)\]", match.group(2))
            members = [m.strip() for m in listed.group(1).split(",")] if listed else None
            roots.append((match.group(1), members))
    return roots


def _own_doc(obj: Any) -> str | None:
    if isinstance(obj, classmethod | staticmethod):
        obj = obj.__func__
    if isinstance(obj, type):
        return vars(obj).get("__doc__")
    if isinstance(obj, types.ModuleType | types.FunctionType | property):
        return obj.__doc__
    return getattr(obj, "__doc__", None) if callable(obj) else None


def _is_member(attr: Any) -> bool:
    return isinstance(attr, types.FunctionType | classmethod | staticmethod | property)


def public_api() -> tuple[dict[str, Any], set[str]]:
    """Qualified public name -> object, each object once (under its first name); and the
    names that must have an example: modules, and the classes and functions of a module's
    public members (a method's examples run when it has some; exceptions are shown by the
    examples of what raises them)."""
    found: dict[str, Any] = {}
    required: set[str] = set()
    seen: set[int] = set()

    def add(name: str, obj: Any, members: list[str] | None = None, method: bool = False) -> None:
        key = id(obj.__func__ if isinstance(obj, classmethod | staticmethod) else obj)
        if key in seen:
            return
        seen.add(key)
        found[name] = obj
        exception = isinstance(obj, type) and issubclass(obj, BaseException)
        if isinstance(obj, types.ModuleType | type | types.FunctionType) and not (
            method or exception
        ):
            required.add(name)
        if isinstance(obj, types.ModuleType):
            for member in members or getattr(obj, "__all__", ()):
                add(f"{name}.{member}", getattr(obj, member))
        elif isinstance(obj, type) and obj.__module__.startswith("beamlet"):
            for member, attr in vars(obj).items():
                if not member.startswith("_") and _is_member(attr):
                    add(f"{name}.{member}", attr, method=True)

    for root, members in _documented_roots():
        add(root, _resolve(root), members)
    return found, required


API, REQUIRED = public_api()
PARSER = doctest.DocTestParser()
WITH_EXAMPLES = {
    name: examples
    for name, obj in API.items()
    if (examples := PARSER.get_examples(_own_doc(obj) or "", name))
}


def _compile(example: doctest.Example, name: str) -> types.CodeType:
    return compile(
        example.source,
        f"<{name}>",
        "single",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )


async def _run_examples(name: str, examples: list[doctest.Example]) -> str | None:
    """Run `examples` in order in one namespace; the report of the first mismatch, if any
    (returned, not raised: a crash would log a report from inside the node)."""
    # FunctionType does not add __builtins__ (exec does); 3.12+ needs it for class bodies.
    globs: dict[str, Any] = {
        "__name__": "__doctest__",
        "__builtins__": builtins,
        "beamlet": beamlet,
    }
    checker = doctest.OutputChecker()
    for example in examples:
        flags = OPTIONS
        for flag, on in example.options.items():
            flags = flags | flag if on else flags & ~flag
        if flags & doctest.SKIP:
            continue
        out = io.StringIO()
        exc_msg: str | None = None
        try:
            with contextlib.redirect_stdout(out):
                result = types.FunctionType(_compile(example, name), globs)()
                if inspect.iscoroutine(result):
                    async with asyncio.timeout(EXAMPLE_TIMEOUT):
                        await result
        except Exception as e:
            exc_msg = traceback.format_exception_only(type(e), e)[-1]
            if example.exc_msg is None:
                detail = "".join(traceback.format_exception(e))
                return f"{name}, line {example.lineno + 1}: {example.source.strip()}\n{detail}"
        got = out.getvalue()
        if example.exc_msg is not None:
            ok = exc_msg is not None and checker.check_output(example.exc_msg, exc_msg, flags)
            got = exc_msg or got
            want = example.exc_msg
        else:
            ok = checker.check_output(example.want, got, flags)
            want = example.want
        if not ok:
            shown = doctest.Example(example.source, want)
            return (
                f"{name}, line {example.lineno + 1}:\n"
                + "\n".join(f"    >>> {line}" for line in example.source.splitlines())
                + "\n"
                + checker.output_difference(shown, got, flags)
            )
    return None


def _starts_its_own_node(name: str, examples: list[doctest.Example]) -> bool:
    """No top-level `await`, and a call of `run` or `run_app` (as `beamlet.run(main)`)."""
    if any(_compile(e, name).co_flags & inspect.CO_COROUTINE for e in examples):
        return False
    return any(
        isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
        in {"run", "run_app"}
        for e in examples
        for node in ast.walk(ast.parse(e.source))
    )


def _drive(coro: Coroutine[Any, Any, str | None]) -> str | None:
    """Run a coroutine that never suspends (its examples have no top-level `await`)."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: str | None = done.value
        return result
    coro.close()
    raise AssertionError("an example without `await` suspended")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="issue 9: not yet rewritten"))
        if n in TODO_FAILING
        else n
        for n in sorted(WITH_EXAMPLES)
    ],
)
def test_docstring_example(name: str) -> None:
    examples = WITH_EXAMPLES[name]
    if _starts_its_own_node(name, examples):
        failure = _drive(_run_examples(name, examples))
    else:
        failure = beamlet.run(_run_examples, name, examples)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def _examples_section(doc: str) -> bool:
    """An `Examples:` heading whose indented block has a `>>>` line (prose may come first,
    as Google style allows)."""
    return re.search(r"^( *)Examples:[ \t]*\n(?:(?:\1 +\S.*)?\n)*?\1 +>>> ", doc, re.M) is not None


def test_every_public_class_and_function_has_an_example() -> None:
    missing = sorted(
        name
        for name in REQUIRED - set(NO_EXAMPLE_NEEDED)
        if not _examples_section(_own_doc(API[name]) or "")
    )
    assert sorted(set(missing) - TODO_NO_EXAMPLE) == []
    assert sorted(TODO_NO_EXAMPLE - set(missing)) == [], "done: remove from TODO_NO_EXAMPLE"


def test_the_allow_list_names_public_objects() -> None:
    assert set(NO_EXAMPLE_NEEDED) | TODO_NO_EXAMPLE <= set(API)
    assert set(WITH_EXAMPLES) >= TODO_FAILING


def _docstrings() -> Iterator[tuple[str, int, str]]:
    for path in sorted((ROOT / "src" / "beamlet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ) and (doc := ast.get_docstring(node, clean=False)):
                yield str(path.relative_to(ROOT)), getattr(node, "lineno", 1), doc


def test_no_example_heading_renders_as_prose() -> None:
    """Google style renders `Example:` as an admonition of prose; `Examples:` as code."""
    singular = [
        f"{path}:{line}"
        for path, line, doc in _docstrings()
        if re.search(r"^\s*Example:", doc, re.M)
    ]
    assert singular == []
