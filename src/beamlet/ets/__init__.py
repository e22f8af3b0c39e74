"""Process-owned tables with ETS semantics: `beamlet.ets` (guide: docs/ets.md).

A table belongs to the process that created it and dies with it (unless an heir takes
it over); any process of the node reads it directly, without a message round trip, as
far as the table's access allows (`public`, `protected`: the owner writes, or
`private`). Objects are tuples, copied in and out like messages. The functions have
OTP's names and semantics, checked against a real Erlang (tests/ets).

Examples:
    >>> from beamlet import ets
    >>> async def main():
    ...     tid = ets.new("prices", type="ordered_set")
    ...     ets.insert(tid, [("apple", 3), ("pear", 5)])
    ...     X, P = ets.vars("X", "P")
    ...     return ets.lookup(tid, "pear"), ets.select(tid, ets.query((X, P), where=P > 4))
    >>> beamlet.run(main)
    ([('pear', 5)], [('pear', 5)])
"""

from beamlet._core import Atom
from beamlet.ets import api
from beamlet.ets.api import *  # noqa: F403 -- the operations and table constants: api.__all__
from beamlet.ets.query import OBJECT, F, Var, query, vars
from beamlet.ets.table import EtsError, Tid

__all__ = ["OBJECT", "EtsError", "F", "Tid", "Var", "query", "var", "vars"]
__all__ += api.__all__


def var(n: int) -> Atom:
    """The match variable `Atom("$n")` for hand-written match specifications.

    Examples:
        >>> from beamlet import ets
        >>> from beamlet import Atom
        >>> ets.var(1)
        Atom('$1')
        >>> tid = ets.new("t")
        >>> ets.insert(tid, [("a", 1), ("b", 2)])
        True
        >>> spec = [((ets.var(1), ets.var(2)), [(Atom(">"), ets.var(2), 1)], [ets.var(1)])]
        >>> ets.select(tid, spec)
        ['b']
    """
    return Atom(f"${n}")
