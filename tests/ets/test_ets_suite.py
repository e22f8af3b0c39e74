"""Port of lib/stdlib/test/ets_SUITE.erl: the cases that apply to one node (named after
them), plus the ownership, access and isolation rules of docs/ets.md.

Python differences: tables are created with keyword options (`type="bag"`), `badarg`
is `EtsError` (with `.argument` naming the argument), `undefined` from `info` is None,
and `'$end_of_table'` is `ets.END_OF_TABLE`. Cases about files (tab2file), memory
accounting of the emulator, fixation and concurrency of schedulers do not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import beamlet
from beamlet import ANY, Atom, Down, ets
from beamlet.ets import END_OF_TABLE, ETS_TRANSFER, EtsError
from beamlet.testing import assert_receive

A = Atom


async def in_process(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a new process; its result, or the EtsError it raised."""
    me = beamlet.self()
    ref = beamlet.make_ref()

    async def body() -> None:
        try:
            r: Any = fn()
        except EtsError as e:
            r = e
        beamlet.send(me, (ref, r))

    beamlet.spawn(body)
    _, r = await assert_receive((ref, ANY))
    return r


async def owner_then_exit(make: Callable[[], Any]) -> tuple[Any, beamlet.Pid]:
    """A process makes a table, reports it, and waits for "stop"; returns (table, pid)."""
    me = beamlet.self()
    ref = beamlet.make_ref()

    async def owner() -> None:
        beamlet.send(me, (ref, make()))
        await beamlet.receive("stop")

    pid = beamlet.spawn(owner)
    _, tab = await assert_receive((ref, ANY))
    return tab, pid


async def stop_and_wait(pid: beamlet.Pid) -> None:
    ref = beamlet.monitor(pid)
    beamlet.send(pid, "stop")
    await assert_receive(Down(ref, ANY, ANY, ANY, ANY))


# --- ets_SUITE ---------------------------------------------------------------------------


async def test_default() -> None:
    t = ets.new("t")
    i = ets.info(t)
    assert (i.type, i.protection, i.keypos, i.named_table, i.heir) == (
        ets.SET,
        ets.PROTECTED,
        1,
        False,
        None,
    )
    assert (i.read_concurrency, i.write_concurrency, i.compressed) == (False, False, False)
    assert i.owner == beamlet.self() and i.size == 0


async def test_setbag() -> None:
    s = ets.new("s")
    b = ets.new("b", type="bag")
    ets.insert(s, (A("key"), 1))
    ets.insert(s, (A("key"), 2))
    ets.insert(b, (A("key"), 1))
    ets.insert(b, (A("key"), 2))
    ets.insert(b, (A("key"), 2))
    assert ets.lookup(s, A("key")) == [(A("key"), 2)]
    assert ets.lookup(b, A("key")) == [(A("key"), 1), (A("key"), 2)]


async def test_badnew() -> None:
    for kwargs in ({"type": "sett"}, {"access": "open"}, {"keypos": 0}, {"keypos": "1"}):
        with pytest.raises(EtsError) as e:
            ets.new("t", **kwargs)
        assert e.value.argument == 2
    with pytest.raises(EtsError) as e:
        ets.new(42)  # type: ignore[arg-type]
    assert e.value.argument == 1


async def test_named() -> None:
    name = ets.new("foo", named_table=True)
    assert name == A("foo")
    assert ets.insert("foo", (1, 2)) is True
    assert ets.lookup(A("foo"), 1) == [(1, 2)]
    with pytest.raises(EtsError, match="already exists"):
        ets.new("foo", named_table=True)
    ets.new("foo")  # an unnamed table may reuse the name
    ets.delete("foo")
    assert ets.info("foo") is None


async def test_keypos2() -> None:
    t = ets.new("t", keypos=2)
    ets.insert(t, (A("x"), 1, A("a")))
    assert ets.lookup(t, 1) == [(A("x"), 1, A("a"))]
    with pytest.raises(EtsError, match="fewer than 2 elements") as e:
        ets.insert(t, (A("x"),))
    assert e.value.argument == 2


async def test_privacy() -> None:
    pub = ets.new("pub", access="public")
    prot = ets.new("prot")
    priv = ets.new("priv", access="private")
    for t in (pub, prot, priv):
        ets.insert(t, (1, A("owner")))
    assert await in_process(lambda: ets.insert(pub, (2, A("other")))) is True
    e = await in_process(lambda: ets.insert(prot, (2, A("other"))))
    assert isinstance(e, EtsError) and e.cause == "access" and e.argument == 1
    assert await in_process(lambda: ets.lookup(prot, 1)) == [(1, A("owner"))]
    e = await in_process(lambda: ets.lookup(priv, 1))
    assert isinstance(e, EtsError) and "insufficient access rights" in str(e)
    e = await in_process(lambda: ets.delete(prot))
    assert isinstance(e, EtsError)
    assert ets.lookup(priv, 1) == [(1, A("owner"))]


async def test_empty() -> None:
    for t in ("set", "ordered_set", "bag", "duplicate_bag"):
        tab = ets.new("t", type=t)
        assert ets.first(tab) == END_OF_TABLE
        assert ets.last(tab) == END_OF_TABLE
        assert ets.tab2list(tab) == []
        assert ets.info(tab, "size") == 0


async def test_badinsert() -> None:
    t = ets.new("t")
    for bad in (A("x"), [A("x")], [(1,), A("x")], [], ()):
        if bad == []:
            assert ets.insert(t, bad) is True
            continue
        with pytest.raises(EtsError) as e:
            ets.insert(t, bad)  # type: ignore[arg-type]
        assert e.value.argument == 2
    assert ets.tab2list(t) == []  # a list with a bad object inserts nothing


async def test_badlookup() -> None:
    t = ets.new("t")
    ets.delete(t)
    with pytest.raises(EtsError, match="argument 1: the table identifier does not refer"):
        ets.lookup(t, 1)
    with pytest.raises(EtsError):
        ets.lookup(A("no_such_table"), 1)


async def test_lookup_order() -> None:
    b = ets.new("b", type="duplicate_bag")
    for i in (3, 1, 2, 1):
        ets.insert(b, (A("k"), i))
    assert ets.lookup(b, A("k")) == [(A("k"), 3), (A("k"), 1), (A("k"), 2), (A("k"), 1)]
    ets.delete_object(b, (A("k"), 1))
    assert ets.lookup(b, A("k")) == [(A("k"), 3), (A("k"), 2)]


async def test_lookup_element_mult() -> None:
    b = ets.new("b", type="bag")
    ets.insert(b, [(A("k"), 1, A("a")), (A("k"), 2, A("b"))])
    assert ets.lookup_element(b, A("k"), 3) == [A("a"), A("b")]
    with pytest.raises(EtsError) as e:
        ets.lookup_element(b, A("k"), 4)
    assert e.value.cause == "position"
    with pytest.raises(EtsError) as e:
        ets.lookup_element(b, A("missing"), 2)
    assert e.value.cause == "badkey"
    assert ets.lookup_element(b, A("missing"), 2, A("dflt")) == A("dflt")


async def test_delete_elem() -> None:
    for t in ("set", "ordered_set", "bag", "duplicate_bag"):
        tab = ets.new("t", type=t)
        ets.insert(tab, [(i, i) for i in range(10)])
        for i in range(0, 10, 2):
            ets.delete(tab, i)
        assert sorted(ets.tab2list(tab)) == [(i, i) for i in range(1, 10, 2)]


async def test_delete_tab() -> None:
    t = ets.new("t", named_table=True)
    tid = ets.whereis("t")
    assert ets.delete(t) is True
    assert ets.info(tid) is None and ets.whereis("t") is None
    ets.new("t", named_table=True)
    assert ets.whereis("t") != tid
    with pytest.raises(EtsError):
        ets.lookup(tid, 1)  # the old id stays invalid even though the name is taken


async def test_baddelete() -> None:
    t = ets.new("t")
    ets.delete(t)
    with pytest.raises(EtsError):
        ets.delete(t)
    with pytest.raises(EtsError):
        ets.delete(t, 1)


async def test_match_delete() -> None:
    t = ets.new("t", type="bag")
    ets.insert(t, [(i % 3, i) for i in range(9)])
    ets.match_delete(t, (1, A("_")))
    assert sorted(ets.tab2list(t)) == sorted((i % 3, i) for i in range(9) if i % 3 != 1)


async def test_firstnext() -> None:
    t = ets.new("t")
    ets.insert(t, [(i, i) for i in range(100)])
    seen, k = [], ets.first(t)
    while k != END_OF_TABLE:
        seen.append(k)
        k = ets.next(t, k)
    assert sorted(seen) == list(range(100))
    with pytest.raises(EtsError):
        ets.next(t, 1000)  # a key not in an unfixed hash table


async def test_firstnext_deleting_while_traversing() -> None:
    t = ets.new("t")
    ets.insert(t, [(i, i) for i in range(50)])
    k, seen = ets.first(t), []
    while k != END_OF_TABLE:
        seen.append(k)
        nk = ets.next(t, k)
        if k % 2:
            ets.delete(t, k)  # deleting the current key after stepping past it is fine
        k = nk
    assert sorted(seen) == list(range(50))


async def test_dups() -> None:
    t = ets.new("t", type="duplicate_bag")
    ets.insert(t, (1, 2))
    ets.insert(t, (1, 2))
    assert ets.info(t, "size") == 2
    assert ets.lookup(t, 1) == [(1, 2), (1, 2)]
    ets.delete_object(t, (1, 2))
    assert ets.lookup(t, 1) == []


async def test_heir() -> None:
    me = beamlet.self()
    tab, owner = await owner_then_exit(
        lambda: ets.new("t", heir=me, heir_data=A("data"), named_table=True)
    )
    ets_info = ets.info(tab)
    assert ets_info.owner == owner and ets_info.heir == me
    beamlet.send(owner, "stop")
    await assert_receive((ETS_TRANSFER, A("t"), owner, A("data")))
    assert ets.info(tab, "owner") == me
    ets.insert(tab, (1, 2))  # the heir owns it now: it may write a protected table


async def test_heir_dead_deletes_the_table() -> None:
    heir, _ = await owner_then_exit(beamlet.self)
    tab, owner = await owner_then_exit(lambda: ets.new("t", heir=heir))
    await stop_and_wait(heir)
    await stop_and_wait(owner)
    assert ets.info(tab) is None


async def test_owner_death_deletes_before_down() -> None:
    tab, owner = await owner_then_exit(lambda: ets.new("t", access="public"))
    ref = beamlet.monitor(owner)
    beamlet.send(owner, "stop")
    await assert_receive(Down(ref, ANY, ANY, ANY, ANY))
    assert ets.info(tab) is None  # the table was gone before the DOWN was sent
    with pytest.raises(EtsError, match="does not refer to an existing ETS table"):
        ets.insert(tab, (1,))


async def test_give_away() -> None:
    t = ets.new("t")
    me = beamlet.self()
    with pytest.raises(EtsError) as e:
        ets.give_away(t, me, None)
    assert e.value.argument == 2
    _receiver, rpid = await owner_then_exit(beamlet.self)
    assert ets.give_away(t, rpid, A("gift")) is True
    assert ets.info(t, "owner") == rpid
    with pytest.raises(EtsError) as e:
        ets.give_away(t, me, None)  # no longer the owner
    assert e.value.cause == "not_owner"
    with pytest.raises(EtsError):
        ets.insert(t, (1,))  # protected: only the new owner writes
    await stop_and_wait(rpid)
    assert ets.info(t) is None


async def test_give_away_sends_transfer() -> None:
    me = beamlet.self()
    ref = beamlet.make_ref()

    async def receiver() -> None:
        msg = await beamlet.receive((ETS_TRANSFER, ANY, ANY, ANY))
        beamlet.send(me, (ref, msg))

    pid = beamlet.spawn(receiver)
    t = ets.new("t")
    ets.give_away(t, pid, [1, 2])
    _, msg = await assert_receive((ref, ANY))
    assert msg == (ETS_TRANSFER, t, me, [1, 2])


async def test_setopts() -> None:
    me = beamlet.self()
    _heir, hpid = await owner_then_exit(beamlet.self)
    t = ets.new("t")
    ets.setopts(t, heir=hpid, heir_data=1)
    assert ets.info(t, "heir") == hpid
    ets.setopts(t, heir=None)
    assert ets.info(t, "heir") is None
    e = await in_process(lambda: ets.setopts(t, heir=me))
    assert isinstance(e, EtsError)
    await stop_and_wait(hpid)


async def test_update_counter() -> None:
    t = ets.new("t")
    ets.insert(t, (A("a"), 1, 10))
    assert ets.update_counter(t, A("a"), 1) == 2
    assert ets.update_counter(t, A("a"), (3, -3)) == 7
    assert ets.update_counter(t, A("a"), [(2, 1), (3, 10, 12, 0)]) == [3, 0]
    assert ets.update_counter(t, A("a"), (2, -10, -1, 99)) == 99
    assert ets.lookup(t, A("a")) == [(A("a"), 99, 0)]
    for bad in ((1, 1), (4, 1), (2, 1.5), A("x")):
        with pytest.raises(EtsError):
            ets.update_counter(t, A("a"), bad)
    ets.insert(t, (A("b"), A("notint")))
    with pytest.raises(EtsError):
        ets.update_counter(t, A("b"), 1)
    with pytest.raises(EtsError) as e:
        ets.update_counter(t, A("missing"), 1)
    assert e.value.cause == "badkey"
    with pytest.raises(EtsError) as e:
        ets.update_counter(ets.new("b", type="bag"), A("a"), 1)
    assert e.value.cause == "table_type"
    assert ets.lookup(t, A("a")) == [(A("a"), 99, 0)]  # failed updates changed nothing


async def test_update_counter_with_default() -> None:
    t = ets.new("t")
    assert ets.update_counter(t, A("c"), 5, (A("ignored"), 10)) == 15
    assert ets.lookup(t, A("c")) == [(A("c"), 15)]
    assert ets.update_counter(t, A("d"), [(2, 1), (3, 2)], (A("d"), 0, 0)) == [1, 2]


async def test_update_element() -> None:
    t = ets.new("t", type="ordered_set")
    ets.insert(t, (1, A("a"), A("b")))
    assert ets.update_element(t, 1, [(2, A("x")), (3, A("y"))]) is True
    assert ets.lookup(t, 1.0) == [(1, A("x"), A("y"))]
    assert ets.update_element(t, 2, (2, A("x"))) is False
    with pytest.raises(EtsError) as e:
        ets.update_element(t, 1, (1, 5))
    assert e.value.cause == "keypos"
    with pytest.raises(EtsError) as e:
        ets.update_element(t, 1, (4, 5))
    assert e.value.cause == "position"


async def test_t_insert_new() -> None:
    t = ets.new("t")
    assert ets.insert_new(t, [(1, 1), (2, 2)]) is True
    assert ets.insert_new(t, [(3, 3), (2, 0)]) is False
    assert ets.lookup(t, 3) == []  # all or nothing
    assert ets.insert_new(t, (3, 3)) is True


async def test_t_select_delete() -> None:
    t = ets.new("t", type="ordered_set")
    ets.insert(t, [(i, i * i) for i in range(20)])
    spec = [((A("$1"), A("_")), [(A("<"), A("$1"), 10)], [True])]
    assert ets.select_delete(t, spec) == 10
    assert ets.first(t) == 10


async def test_t_select_replace() -> None:
    t = ets.new("t")
    ets.insert(t, (A("k"), 1))
    # compare-and-swap: replace {k, 1} by {k, 2} only if it is still {k, 1}
    cas = [((A("k"), 1), [], [(A("const"), (A("k"), 2))])]
    assert ets.select_replace(t, cas) == 1
    assert ets.select_replace(t, cas) == 0
    assert ets.lookup(t, A("k")) == [(A("k"), 2)]
    with pytest.raises(EtsError):
        ets.select_replace(t, [((A("$1"), A("$2")), [], [((A("other"), A("$2")),)])])
    with pytest.raises(EtsError):
        ets.select_replace(ets.new("b", type="bag"), cas)


async def test_select_bound_chunk() -> None:
    t = ets.new("t", type="ordered_set")
    ets.insert(t, [(i, i) for i in range(10)])
    spec = [((A("$1"), A("_")), [], [A("$1")])]
    r, c = ets.select(t, spec, 4)
    assert r == [0, 1, 2, 3]
    ets.insert(t, (3.5, 0))  # written between chunks: seen, as it sorts after the position
    r2, c2 = ets.select(c)
    assert r2 == [3.5, 4, 5, 6]
    r3, end = ets.select(c2)
    assert r3 == [7, 8, 9] and end == END_OF_TABLE
    assert ets.select(t, [((A("$1"), A("_")), [(A(">"), A("$1"), 100)], [A("$1")])], 4) == (
        END_OF_TABLE
    )


async def test_continuing_past_the_end_returns_end_of_table() -> None:
    # erl 25: ets:select('$end_of_table') (and select_reverse/1, match/1, match_object/1)
    # return '$end_of_table', so the usual chunk loop ends without a special case.
    t = ets.new("t", type="ordered_set")
    ets.insert(t, [(i, i) for i in range(5)])
    spec = [((A("$1"), A("_")), [], [A("$1")])]
    seen: list[Any] = []
    step: Any = ets.select(t, spec, 2)
    while step != END_OF_TABLE:
        chunk, cont = step
        seen += chunk
        step = ets.select(cont)
    assert seen == [0, 1, 2, 3, 4]
    for resume in (ets.select, ets.select_reverse, ets.match, ets.match_object):
        assert resume(END_OF_TABLE) == END_OF_TABLE


async def test_t_select_reverse() -> None:
    t = ets.new("t", type="ordered_set")
    ets.insert(t, [(i, i) for i in range(6)])
    spec = [((A("$1"), A("_")), [], [A("$1")])]
    assert ets.select_reverse(t, spec) == [5, 4, 3, 2, 1, 0]
    r, c = ets.select_reverse(t, spec, 4)
    assert r == [5, 4, 3, 2]
    assert ets.select_reverse(c) == ([1, 0], END_OF_TABLE)


async def test_rename() -> None:
    ets.new("old", named_table=True)
    assert ets.rename("old", "new") == A("new")
    assert ets.info("new", "name") == A("new")
    assert ets.whereis("old") is None
    ets.new("other", named_table=True)
    with pytest.raises(EtsError):
        ets.rename("new", "other")


async def test_rename_unnamed() -> None:
    t = ets.new("t")
    ets.rename(t, "n")
    assert ets.info(t, "name") == A("n")
    with pytest.raises(EtsError):
        ets.lookup("n", 1)  # not a named table


async def test_ordered() -> None:
    t = ets.new("t", type="ordered_set")
    terms = [(1,), A("a"), 2.5, b"bin", [1], (1, 2), 0, "str"]
    ets.insert(t, [(k,) for k in terms])
    # number < atom < tuple < list < binary; tuples by size first
    expected = [0, 2.5, A("a"), (1,), (1, 2), [1], b"bin", "str"]
    assert [o[0] for o in ets.tab2list(t)] == expected
    assert ets.next(t, 1) == 2.5 and ets.prev(t, A("b")) == A("a")


async def test_ordered_match() -> None:
    t = ets.new("t", type="ordered_set")
    ets.insert(t, [((i % 3, i), i) for i in range(9)])
    assert ets.match(t, ((1, A("$1")), A("_"))) == [[1], [4], [7]]
    assert ets.match_object(t, ((2, A("_")), 8)) == [((2, 8), 8)]


async def test_member() -> None:
    t = ets.new("t")
    ets.insert(t, (1, 2))
    assert ets.member(t, 1) and not ets.member(t, 1.0) and not ets.member(t, 2)
    o = ets.new("o", type="ordered_set")
    ets.insert(o, (1, 2))
    assert ets.member(o, 1.0)


async def test_take() -> None:
    t = ets.new("t", type="bag")
    ets.insert(t, [(1, A("a")), (1, A("b")), (2, A("c"))])
    assert ets.take(t, 1) == [(1, A("a")), (1, A("b"))]
    assert ets.take(t, 1) == []
    assert ets.info(t, "size") == 1


async def test_whereis_table() -> None:
    assert ets.whereis("none_here") is None
    ets.new("w", named_table=True)
    tid = ets.whereis("w")
    assert isinstance(tid, ets.Tid)
    ets.insert(tid, (1, 1))
    assert ets.lookup("w", 1) == [(1, 1)]


async def test_t_delete_object() -> None:
    t = ets.new("t", type="bag")
    ets.insert(t, [(1, 1), (1, 2)])
    ets.delete_object(t, (1, 1.0))  # exact match: 1.0 is not 1
    assert ets.lookup(t, 1) == [(1, 1), (1, 2)]
    ets.delete_object(t, (1, 1))
    assert ets.lookup(t, 1) == [(1, 2)]


async def test_info() -> None:
    t = ets.new("t", type="bag", access="public", read_concurrency=True)
    ets.insert(t, [(i, b"x" * 100) for i in range(10)])
    i = ets.info(t)
    assert i.type == ets.BAG and i.protection == ets.PUBLIC and i.read_concurrency is True
    assert i.size == 10 and i.memory > 10 * 100 // 8
    assert ets.info(t, "size") == 10
    with pytest.raises(EtsError):
        ets.info(t, "colour")
    with pytest.raises(EtsError):
        ets.info(42)  # type: ignore[arg-type]


async def test_bad_table() -> None:
    t = ets.new("t", access="public")
    ets.delete(t)
    for op in (
        lambda: ets.insert(t, (1,)),
        lambda: ets.lookup(t, 1),
        lambda: ets.first(t),
        lambda: ets.select(t, [(A("_"), [], [True])]),
        lambda: ets.update_counter(t, 1, 1),
        lambda: ets.tab2list(t),
    ):
        with pytest.raises(EtsError) as e:
            op()
        assert e.value.argument == 1 and e.value.cause == "id"


async def test_foldl_foldr() -> None:
    t = ets.new("t", type="ordered_set")
    ets.insert(t, [(i,) for i in range(4)])
    assert ets.foldl(lambda o, acc: [*acc, o[0]], [], t) == [0, 1, 2, 3]
    assert ets.foldr(lambda o, acc: [*acc, o[0]], [], t) == [3, 2, 1, 0]


# --- beamlet rules -----------------------------------------------------------------------


async def test_objects_are_copied_in_and_out() -> None:
    t = ets.new("t")
    value = [1, 2]
    ets.insert(t, (A("k"), value))
    value.append(3)
    got = ets.lookup(t, A("k"))[0][1]
    assert got == [1, 2]
    got.append(4)
    assert ets.lookup(t, A("k")) == [(A("k"), [1, 2])]
    flat = (A("k2"), 1, "s")
    ets.insert(t, flat)
    assert ets.lookup(t, A("k2"))[0] is flat  # immutables by reference


async def test_all_and_process_info_list_tables() -> None:
    a = ets.new("a")
    ets.new("b", named_table=True)
    assert ets.all() == [a, A("b")]
    info = beamlet.process_info(beamlet.self())
    assert info is not None and info.tables == (a, A("b"))
    tab, owner = await owner_then_exit(lambda: ets.new("c"))
    other = beamlet.process_info(owner)
    assert other is not None and other.tables == (tab,)
    await stop_and_wait(owner)
    assert ets.all() == [a, A("b")]


async def test_query_form_compiles_to_a_match_spec() -> None:
    X, Y = ets.vars("X", "Y")
    spec = ets.query((X, Y, ANY), where=(Y > 3) & ~ets.F.is_atom(X), select=(Y, X))
    assert spec == [
        (
            (A("$1"), A("$2"), A("_")),
            [(A("andalso"), (A(">"), A("$2"), 3), (A("not"), (A("is_atom"), A("$1"))))],
            [((A("$2"), A("$1")),)],
        )
    ]
    t = ets.new("t")
    ets.insert(t, [(1, 5, 0), (A("a"), 9, 0), (2, 1, 0)])
    assert ets.select(t, spec) == [(5, 1)]
    assert ets.select_count(t, ets.query((X, Y, ANY), where=Y >= 1, select=True)) == 3
    with pytest.raises(TypeError):
        ets.query((X, Y), where=(X > 1) and (Y > 1))


async def test_bad_match_specs() -> None:
    t = ets.new("t")
    for bad in (
        [((A("$1"),), [], [A("$2")])],  # unbound variable
        [((A("$1"),), [], [])],  # empty body
        [((A("$1"),), [(A("foo"), A("$1"))], [True])],  # unknown function
        (A("_"), [], [True]),  # not a list
    ):
        with pytest.raises(EtsError) as e:
            ets.select(t, bad)
        assert e.value.argument == 2


async def test_not_a_process() -> None:
    async with beamlet.Node() as node:

        async def make() -> Any:
            return ets.new("t", access="public")

        t = await node.run(make)
        assert ets.info(t) is None  # its owner (the run's process) has exited


def test_new_outside_a_process() -> None:
    with pytest.raises(beamlet.NotInProcess):
        ets.new("t")


async def test_list_fallback_index() -> None:
    from beamlet.ets.sorted_keys import ListKeys

    k = ListKeys()
    for x in (5, 1, 3):
        k.add(x)
    k.remove(3)
    assert list(k) == [1, 5] and k.bisect_left(5) == 1 and k.bisect_right(5) == 2


async def test_chunked_select_snapshot() -> None:
    t = ets.new("t")
    ets.insert(t, [(i, i) for i in range(6)])
    spec = [((A("$1"), A("_")), [], [A("$1")])]
    first_chunk, cont = ets.select(t, spec, 3)
    ets.insert(t, (100, 100))  # a new key after the first chunk: not in the snapshot
    rest = ets.select(cont)
    ets.delete(t, 5)
    seen = first_chunk + rest[0]
    assert sorted(seen) == [0, 1, 2, 3, 4, 5] and 100 not in seen


async def test_insert_list_into_bag_keeps_order() -> None:
    b = ets.new("b", type="bag")
    ets.insert(b, [(A("k"), 1), (A("k"), 1), (A("k"), 2)])
    assert ets.lookup(b, A("k")) == [(A("k"), 1), (A("k"), 2)]
    d = ets.new("d", type="duplicate_bag")
    ets.insert(d, [(A("k"), 1), (A("k"), 1), (A("k"), 2)])
    assert ets.lookup(d, A("k")) == [(A("k"), 1), (A("k"), 1), (A("k"), 2)]


async def test_python_values_are_distinct_keys() -> None:
    o = ets.new("o", type="ordered_set")
    ets.insert(o, [(True,), (A("true"),), ("a",), (b"a",), (None,), (A("undefined"),)])
    assert ets.info(o, "size") == 6
    keys = [x[0] for x in ets.tab2list(o)]
    assert keys.index(A("true")) + 1 == keys.index(True)  # adjacent, the atom first
    assert keys.index("a") + 1 == keys.index(b"a") or keys.index(b"a") + 1 == keys.index("a")
    s = ets.new("s")
    ets.insert(s, [(1,), (1.0,), (True,)])
    assert ets.info(s, "size") == 3


async def test_owner_and_heir_die_together() -> None:
    _, hpid = await owner_then_exit(beamlet.self)

    async def owner(me: beamlet.Pid, heir: beamlet.Pid) -> None:
        beamlet.link(heir)  # the owner's death takes the heir with it
        beamlet.send(me, ets.new("t", heir=heir))
        await beamlet.receive("never")

    pid = beamlet.spawn(owner, beamlet.self(), hpid)
    tab = await assert_receive(ets.Tid)
    ref = beamlet.monitor(hpid)
    beamlet.exit(pid, beamlet.KILL)
    await assert_receive(Down(ref, ANY, ANY, ANY, ANY))
    assert ets.info(tab) is None and tab not in ets.all()
