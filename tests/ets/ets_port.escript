#!/usr/bin/env escript
%%! -noinput
%% A port for the differential tests (tests/ets/test_differential.py): reads
%% term_to_binary commands on stdin ({packet, 4}), runs them on one ets table and
%% writes each result back. Commands:
%%   {new, Options}            a fresh table (the previous one is deleted)
%%   {call, Fun, Args}         ets:Fun(Table, Args...), badarg -> badarg
%%   {chunks, Fun, Args}       ets:Fun(Table, Args...) with a limit, then Fun/1 on each
%%                             continuation: the list of chunks
%%   {traverse, First, Next}   First/Next from the first key: the keys in order
-mode(compile).

main(_) ->
    Port = open_port({fd, 0, 1}, [binary, {packet, 4}, eof]),
    loop(Port, undefined).

loop(Port, T) ->
    receive
        {Port, {data, Bin}} ->
            {Reply, T2} = run(binary_to_term(Bin), T),
            port_command(Port, term_to_binary(Reply)),
            loop(Port, T2);
        {Port, eof} ->
            halt(0)
    end.

run({new, Opts}, T) ->
    catch ets:delete(T),
    {ok, ets:new(t, Opts)};
run({call, F, Args}, T) ->
    {guard(fun() -> apply(ets, F, [T | Args]) end), T};
run({chunks, F, Args}, T) ->
    {guard(fun() -> chunks(F, apply(ets, F, [T | Args]), []) end), T};
run({traverse, First, Next}, T) ->
    {guard(fun() -> traverse(T, Next, ets:First(T), []) end), T}.

chunks(_F, '$end_of_table', Acc) -> lists:reverse(Acc);
chunks(_F, {Res, '$end_of_table'}, Acc) -> lists:reverse([Res | Acc]);
chunks(F, {Res, Cont}, Acc) -> chunks(F, ets:F(Cont), [Res | Acc]).

traverse(_T, _Next, '$end_of_table', Acc) -> lists:reverse(Acc);
traverse(T, Next, K, Acc) -> traverse(T, Next, ets:Next(T, K), [K | Acc]).

guard(Fun) ->
    try Fun() of
        R -> {ok, R}
    catch
        error:badarg -> badarg;
        C:E -> {error, {C, E}}
    end.
