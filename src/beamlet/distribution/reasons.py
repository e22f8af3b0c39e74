"""Exit reasons and errors as Erlang sees them.

A Python crash crossing to another node becomes `{{python, TypeName, Message}, Stack}`,
with the stack in the shape `erl_error` and the shell can format; any other reason that
cannot be encoded becomes `{python, Repr}`.
"""

from __future__ import annotations

import reprlib
from types import TracebackType
from typing import Any

from beamlet._core import Atom, Crash
from beamlet.distribution import etf

PYTHON = Atom("python")
_FILE = Atom("file")
_LINE = Atom("line")


def python_stack(
    frames: tuple[tuple[str, str, int], ...] | list[tuple[str, str, int]],
) -> list[Any]:
    """Python frames as an Erlang stacktrace: `[{python, Function, 0, [{file, F}, {line, L}]}]`
    (innermost first, the shape `erl_error` and the shell can format)."""
    out: list[Any] = []
    for filename, function, lineno in reversed(frames):
        out.append(
            (
                PYTHON,
                Atom(function[:255]),
                0,
                [(_FILE, etf.Charlist(filename[:4096])), (_LINE, int(lineno))],
            )
        )
    return out


def tb_frames(tb: TracebackType | None) -> list[tuple[str, str, int]]:
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def python_error(exc: BaseException) -> tuple[Atom, str, str]:
    """A Python exception as an Erlang error term: `{python, TypeName, Message}` (the two
    texts are UTF-8 binaries)."""
    return (PYTHON, type(exc).__name__, str(exc))


def wire_reason(reason: Any, options: etf.CodecOptions | None = None) -> Any:
    """An exit reason as Erlang can receive it: a Python crash becomes `{E, Stack}` with
    `E = {python, TypeName, Message}`; anything unencodable (with `options`, those of the
    connection it goes on) becomes `{python, Repr}`."""
    if type(reason) is Crash:
        return (python_error(reason.exception), python_stack(reason.stacktrace))
    try:
        etf.encode(reason, options=options or etf.DEFAULT_OPTIONS)
        return reason
    except etf.EncodeError:
        return (PYTHON, repr(reason))


class _Brief(reprlib.Repr):
    def repr_int(self, obj: int, level: int) -> str:
        if obj.bit_length() > 128:  # repr of a huge int is slow, or refused
            return f"<int of {obj.bit_length()} bits>"
        return repr(obj)

    def repr_instance(self, obj: Any, level: int) -> str:
        try:
            text = repr(obj)
        except Exception:
            return f"<{type(obj).__name__}>"
        return text if len(text) <= self.maxother else text[: self.maxother - 3] + "..."


_BRIEF = _Brief()
_BRIEF.maxlevel = 5
_BRIEF.maxtuple = _BRIEF.maxlist = _BRIEF.maxdict = 8
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlong = 40


def brief(term: Any, limit: int = 200) -> str:
    """A term as log text, bounded in depth and size whatever the term (as Erlang's
    `~P`): a log line about a peer's message must never raise or take long."""
    try:
        text = _BRIEF.repr(term)
    except Exception:  # a term whose repr fails: say what it is
        text = f"<{type(term).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
