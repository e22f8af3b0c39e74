%% The GenStage bench pipeline on the BEAM, as plain processes speaking GenStage's
%% messages (docs/gen_stage.md G3, G4.1): producer -> producer_consumer (doubles) ->
%% N consumers (sum), max_demand 1000 / min_demand 0 (batches of 1,000), DemandDispatcher-like sharing.
%% Run: erl -noshell -pa Dir -run gen_stage_beam main Events Consumers -s init stop
-module(gen_stage_beam).
-export([main/1]).

-define(MAX, 1000).
-define(MIN, 0).

main([EventsS, ConsumersS]) ->
    N = list_to_integer(EventsS),
    C = list_to_integer(ConsumersS),
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    P = spawn_link(fun() -> producer(0, N) end),
    PC = spawn_link(fun() -> pc_init(P) end),
    [spawn_link(fun() -> consumer_init(PC, Self) end) || _ <- lists:seq(1, C)],
    wait(0, N),
    T1 = erlang:monotonic_time(microsecond),
    io:format("RESULT {\"metric\": \"events_per_s\", \"value\": ~p}~n", [N * 1000000 / (T1 - T0)]),
    halt(0).

wait(Got, N) when Got >= N -> ok;
wait(Got, N) -> receive {done, K} -> wait(Got + K, N) end.

producer(I, N) ->
    receive
        {'$gen_producer', _, {subscribe, _, _}} -> producer(I, N);
        {'$gen_producer', {Pid, Tag}, {ask, D}} ->
            J = min(I + D, N),
            case lists:seq(I, J - 1) of
                [] -> ok;
                Es -> Pid ! {'$gen_consumer', {self(), Tag}, Es}
            end,
            producer(J, N)
    end.

%% G4.1: chunks of MAX - MIN; ask when pending demand falls to MIN.
split([], D, Acc) -> {D, lists:reverse(Acc)};
split(Es, D, Acc) ->
    {Chunk, Rest} = lists:split(min(?MAX - ?MIN, length(Es)), Es),
    D1 = D - length(Chunk),
    case D1 =< ?MIN of
        true -> split(Rest, ?MAX, [{Chunk, ?MAX - D1} | Acc]);
        false -> split(Rest, D1, [{Chunk, 0} | Acc])
    end.

pc_init(P) ->
    Tag = erlang:monitor(process, P),
    P ! {'$gen_producer', {self(), Tag}, {subscribe, nil, [{max_demand, ?MAX}]}},
    P ! {'$gen_producer', {self(), Tag}, {ask, ?MAX}},
    pc(P, Tag, ?MAX, queue:new(), [], 0).

%% Downstream: a list of {Demand, Pid, Tag}; Counter = total downstream demand.
pc(P, Tag, D, Q, Subs, Counter) when Counter > 0 ->
    case queue:out(Q) of
        {{value, Es}, Q1} ->
            {D1, Batches} = split(Es, D, []),
            {Subs1, Counter1} = lists:foldl(
                fun({Chunk, Ask}, {S, Cn}) ->
                    Out = [E * 2 || E <- Chunk],
                    S1 = dispatch(Out, S),
                    case Ask of 0 -> ok; _ -> P ! {'$gen_producer', {self(), Tag}, {ask, Ask}} end,
                    {S1, Cn - length(Out)}
                end, {Subs, Counter}, Batches),
            pc(P, Tag, D1, Q1, Subs1, max(Counter1, 0));
        {empty, _} -> pc_wait(P, Tag, D, Q, Subs, Counter)
    end;
pc(P, Tag, D, Q, Subs, Counter) -> pc_wait(P, Tag, D, Q, Subs, Counter).

pc_wait(P, Tag, D, Q, Subs, Counter) ->
    receive
        {'$gen_consumer', {_, Tag}, Es} when is_list(Es) -> pc(P, Tag, D, queue:in(Es, Q), Subs, Counter);
        {'$gen_producer', {Pid, T}, {subscribe, _, _}} -> pc(P, Tag, D, Q, Subs ++ [{0, Pid, T}], Counter);
        {'$gen_producer', {_, T}, {ask, N}} ->
            Subs1 = [case Tg of T -> {Dm + N, Pd, Tg}; _ -> {Dm, Pd, Tg} end || {Dm, Pd, Tg} <- Subs],
            pc(P, Tag, D, Q, lists:reverse(lists:keysort(1, Subs1)), Counter + N)
    end.

dispatch([], Subs) -> Subs;
dispatch(_Es, [{0, _, _} | _] = Subs) -> Subs;
dispatch(Es, [{Dm, Pid, T} | Rest]) ->
    {Now, Later} = lists:split(min(Dm, length(Es)), Es),
    Pid ! {'$gen_consumer', {self(), T}, Now},
    Subs = lists:reverse(lists:keysort(1, [{Dm - length(Now), Pid, T} | Rest])),
    dispatch(Later, Subs);
dispatch(_, []) -> [].

consumer_init(PC, Main) ->
    Tag = erlang:monitor(process, PC),
    PC ! {'$gen_producer', {self(), Tag}, {subscribe, nil, [{max_demand, ?MAX}]}},
    PC ! {'$gen_producer', {self(), Tag}, {ask, ?MAX}},
    consumer(Tag, ?MAX, 0, Main).

consumer(Tag, D, Sum, Main) ->
    receive
        {'$gen_consumer', {Pid, Tag}, Es} when is_list(Es) ->
            {D1, Batches} = split(Es, D, []),
            Sum1 = lists:foldl(
                fun({Chunk, Ask}, S) ->
                    S1 = S + lists:sum(Chunk),
                    Main ! {done, length(Chunk)},
                    case Ask of 0 -> ok; _ -> Pid ! {'$gen_producer', {self(), Tag}, {ask, Ask}} end,
                    S1
                end, Sum, Batches),
            consumer(Tag, D1, Sum1, Main)
    end.
