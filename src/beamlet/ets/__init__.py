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

from beamlet._core.terms import Atom
from beamlet.ets.api import (
    BAG,
    DUPLICATE_BAG,
    END_OF_TABLE,
    ETS_TRANSFER,
    ORDERED_SET,
    PRIVATE,
    PROTECTED,
    PUBLIC,
    SET,
    WILD,
    Continuation,
    TableInfo,
    all,
    delete,
    delete_all_objects,
    delete_object,
    first,
    foldl,
    foldr,
    give_away,
    info,
    insert,
    insert_new,
    last,
    lookup,
    lookup_element,
    match,
    match_delete,
    match_object,
    member,
    new,
    next,
    prev,
    rename,
    select,
    select_count,
    select_delete,
    select_replace,
    select_reverse,
    setopts,
    tab2list,
    take,
    update_counter,
    update_element,
    whereis,
)
from beamlet.ets.query import OBJECT, F, Var, query, vars
from beamlet.ets.table import EtsError, Tid

__all__ = [
    "BAG",
    "DUPLICATE_BAG",
    "END_OF_TABLE",
    "ETS_TRANSFER",
    "OBJECT",
    "ORDERED_SET",
    "PRIVATE",
    "PROTECTED",
    "PUBLIC",
    "SET",
    "WILD",
    "Continuation",
    "EtsError",
    "F",
    "TableInfo",
    "Tid",
    "Var",
    "all",
    "delete",
    "delete_all_objects",
    "delete_object",
    "first",
    "foldl",
    "foldr",
    "give_away",
    "info",
    "insert",
    "insert_new",
    "last",
    "lookup",
    "lookup_element",
    "match",
    "match_delete",
    "match_object",
    "member",
    "new",
    "next",
    "prev",
    "query",
    "rename",
    "select",
    "select_count",
    "select_delete",
    "select_replace",
    "select_reverse",
    "setopts",
    "tab2list",
    "take",
    "update_counter",
    "update_element",
    "var",
    "vars",
    "whereis",
]


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
