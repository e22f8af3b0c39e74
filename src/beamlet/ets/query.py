"""A Pythonic way to write match specifications: `query(head, where=..., select=...)`
builds exactly the `[(head, guards, body)]` list that `select` takes.

    X, Y = ets.vars("X", "Y")
    spec = ets.query((X, Y, ANY), where=(Y > 30) & (X != "root"), select=(Y, X))
    # == [((Atom('$1'), Atom('$2'), Atom('_')),
    #      [(Atom('andalso'), (Atom('>'), Atom('$2'), 30), (Atom('/='), Atom('$1'), 'root'))],
    #      [((Atom('$2'), Atom('$1')),)])]

Variables are numbered `$1`, `$2`... in order of first appearance in the head. In
`where`, comparisons compare in Erlang term order (`==` is arithmetic: `1 == 1.0`;
`F.exact_eq` is `=:=`), `&`, `|` and `~` are `andalso`, `orelse` and `not` (Python's
`and`/`or` cannot be overloaded, so an expression refuses to be a bool), arithmetic is
`+ - * / // %` (`//` is `div`, `%` is `rem`), and `F.<name>(...)` calls any guard
function (`F.is_integer(X)`, `F.element(2, X)`). `select` is the returned value:
`None` for the whole object, a tuple or list built from variables, or `True` (for
`select_count`/`select_delete`). Several clauses: add the lists (`query(...) + query(...)`).
"""

from __future__ import annotations

from typing import Any, Final

from beamlet._core import ANY, Atom

__all__ = ["F", "OBJECT", "Expr", "Var", "query", "vars"]


class Expr:
    """A guard or body expression: `op(*args)`."""

    __slots__ = ("args", "op")

    def __init__(self, op: str, *args: Any) -> None:
        self.op = op
        self.args = args

    def __bool__(self) -> bool:
        raise TypeError("use & | ~ to combine query conditions, not and/or/not")

    __hash__ = object.__hash__

    def _bin(self, op: str, other: Any) -> Expr:
        return Expr(op, self, other)

    def _rbin(self, op: str, other: Any) -> Expr:
        return Expr(op, other, self)

    def __lt__(self, o: Any) -> Expr:
        return self._bin("<", o)

    def __le__(self, o: Any) -> Expr:
        return self._bin("=<", o)

    def __gt__(self, o: Any) -> Expr:
        return self._bin(">", o)

    def __ge__(self, o: Any) -> Expr:
        return self._bin(">=", o)

    def __eq__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("==", o)

    def __ne__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("/=", o)

    def __add__(self, o: Any) -> Expr:
        return self._bin("+", o)

    def __radd__(self, o: Any) -> Expr:
        return self._rbin("+", o)

    def __sub__(self, o: Any) -> Expr:
        return self._bin("-", o)

    def __rsub__(self, o: Any) -> Expr:
        return self._rbin("-", o)

    def __mul__(self, o: Any) -> Expr:
        return self._bin("*", o)

    def __rmul__(self, o: Any) -> Expr:
        return self._rbin("*", o)

    def __truediv__(self, o: Any) -> Expr:
        return self._bin("/", o)

    def __rtruediv__(self, o: Any) -> Expr:
        return self._rbin("/", o)

    def __floordiv__(self, o: Any) -> Expr:
        return self._bin("div", o)

    def __rfloordiv__(self, o: Any) -> Expr:
        return self._rbin("div", o)

    def __mod__(self, o: Any) -> Expr:
        return self._bin("rem", o)

    def __rmod__(self, o: Any) -> Expr:
        return self._rbin("rem", o)

    def __neg__(self) -> Expr:
        return Expr("-", self)

    def __and__(self, o: Any) -> Expr:
        return self._bin("andalso", o)

    def __rand__(self, o: Any) -> Expr:
        return self._rbin("andalso", o)

    def __or__(self, o: Any) -> Expr:
        return self._bin("orelse", o)

    def __ror__(self, o: Any) -> Expr:
        return self._rbin("orelse", o)

    def __invert__(self) -> Expr:
        return Expr("not", self)

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(repr, self.args))})"


class Var(Expr):
    """A query variable; its number (`$N`) is given by `query` from the head.

    Examples:
        >>> from beamlet import ets
        >>> X = ets.Var("X")
        >>> ets.query((X, 1), select=X)  # X is the first variable of the head: $1
        [((Atom('$1'), 1), [], [Atom('$1')])]
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__("var")
        self.name = name

    def __repr__(self) -> str:
        return self.name


class _Object(Expr):
    __slots__ = ()

    def __repr__(self) -> str:
        return "OBJECT"


#: The whole matched object (`'$_'`), for `select=` or inside an expression.
OBJECT: Final = _Object("object")


class _Functions:
    """`F.name(*args)`: a call to the guard function `name` (`F.is_integer(X)`)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        op = {"exact_eq": "=:=", "exact_ne": "=/="}.get(name, name)
        return lambda *args: Expr(op, *args)


F: Final = _Functions()


def vars(*names: str) -> tuple[Var, ...]:
    """Fresh variables: `X, Y = vars("X", "Y")`.

    Examples:
        >>> from beamlet import ets
        >>> Name, Age = ets.vars("Name", "Age")
        >>> tid = ets.new("ages")
        >>> ets.insert(tid, [("ann", 31), ("bob", 25)])
        True
        >>> ets.select(tid, ets.query((Name, Age), where=Age < 30, select=Name))
        ['bob']
    """
    return tuple(Var(n) for n in names)


def _head(p: Any, numbers: dict[Var, Atom]) -> Any:
    if type(p) is Var:
        if p not in numbers:
            numbers[p] = Atom(f"${len(numbers) + 1}")
        return numbers[p]
    if p is ANY:
        return Atom("_")
    if isinstance(p, Expr):
        raise TypeError(f"a query head holds variables, ANY and values, not {p!r}")
    if type(p) is tuple:
        return tuple(_head(x, numbers) for x in p)
    if type(p) is list:
        return [_head(x, numbers) for x in p]
    if type(p) is dict:
        return {k: _head(v, numbers) for k, v in p.items()}
    return p


def _expr(e: Any, numbers: dict[Var, Atom]) -> Any:
    if type(e) is Var:
        if e not in numbers:
            raise ValueError(f"the variable {e.name} does not appear in the query head")
        return numbers[e]
    if e is OBJECT:
        return Atom("$_")
    if type(e) is Expr:
        return (Atom(e.op), *(_expr(a, numbers) for a in e.args))
    if isinstance(e, tuple):
        return (tuple(_expr(x, numbers) for x in e),)
    if type(e) is list:
        return [_expr(x, numbers) for x in e]
    if type(e) is dict:
        return {_expr(k, numbers): _expr(v, numbers) for k, v in e.items()}
    if type(e) is Atom and e.startswith("$"):
        return (Atom("const"), e)
    return e


def query(head: Any, *, where: Any = None, select: Any = None) -> list[Any]:
    """A one-clause match specification (see the module docs).

    Examples:
        >>> from beamlet import ets
        >>> X, Y = ets.vars("X", "Y")
        >>> ets.query((X, Y), where=Y > 3, select=X)
        [((Atom('$1'), Atom('$2')), [(Atom('>'), Atom('$2'), 3)], [Atom('$1')])]
    """
    numbers: dict[Var, Atom] = {}
    h = _head(head, numbers)
    if where is None:
        guards: list[Any] = []
    elif type(where) is list:
        guards = [_expr(g, numbers) for g in where]
    else:
        guards = [_expr(where, numbers)]
    body = Atom("$_") if select is None else _expr(select, numbers)
    return [(h, guards, [body])]
