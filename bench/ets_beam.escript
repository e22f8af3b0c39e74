#!/usr/bin/env escript
%%! -noinput
%% ETS on the BEAM, for bench/bench_ets.py: prints "name ops_per_second" lines.
-mode(compile).

main([NStr]) ->
    N = list_to_integer(NStr),
    Keys = [rand:uniform(N * 10) || _ <- lists:seq(1, N)],
    S = ets:new(s, [set, public]),
    report("set insert", N, fun() -> [ets:insert(S, {K, K}) || K <- Keys] end),
    report("set lookup", N, fun() -> [ets:lookup(S, K) || K <- Keys] end),
    O = ets:new(o, [ordered_set, public]),
    report("ordered_set insert", N, fun() -> [ets:insert(O, {K, K}) || K <- Keys] end),
    report("ordered_set lookup", N, fun() -> [ets:lookup(O, K) || K <- Keys] end),
    Size = ets:info(O, size),
    report("ordered_set next (per step)", Size, fun() -> walk(O, ets:first(O)) end),
    Lo = N, Hi = N + 1000,
    MS = [{{'$1', '_'}, [{'>=', '$1', Lo}, {'<', '$1', Hi}], ['$_']}],
    report("ordered_set range select (1000 keys)", 100, fun() ->
        [ets:select(O, MS) || _ <- lists:seq(1, 100)] end).

walk(_T, '$end_of_table') -> ok;
walk(T, K) -> walk(T, ets:next(T, K)).

report(Name, N, Fun) ->
    Best = lists:min([element(1, timer:tc(Fun)) || _ <- lists:seq(1, 3)]),
    io:format("~s ~p~n", [Name, N / (max(Best, 1) / 1.0e6)]).
