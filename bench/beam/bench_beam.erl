%% The BEAM reference for beamlet's kernel benchmarks (bench/run.py compiles this with
%% erlc into a temporary directory and runs it under `erl +S 1` and with the default
%% schedulers). Usage: erl -noshell +P 5000000 -run bench_beam main <workload> <ints...>
%%   spawn N | ring N Laps | fanin S K | selective Fillers Ksince Kscan | storm N | linkmon K
%% Prints one line per metric: RESULT {"metric":"...","value":...}
-module(bench_beam).
-export([main/1]).

main([W | Args]) ->
    res("schedulers", erlang:system_info(schedulers_online)),
    run(W, [list_to_integer(A) || A <- Args]),
    erlang:halt(0).

now_us() -> erlang:monotonic_time(microsecond).

res(Metric, Val) ->
    io:format("RESULT {\"metric\":\"~s\",\"value\":~.6f}~n", [Metric, float(Val)]).

rss() ->
    erlang:garbage_collect(),
    timer:sleep(100),
    {ok, B} = file:read_file("/proc/self/status"),
    [L] = [X || X <- binary:split(B, <<"\n">>, [global]),
                binary:part(X, 0, min(6, byte_size(X))) =:= <<"VmRSS:">>],
    [_, Kb | _] = binary:split(L, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb) * 1024.

%% 1. N processes, each blocked in receive; time until all have started.
run("spawn", [N]) ->
    R0 = rss(),
    C = atomics:new(1, []),
    T0 = now_us(),
    Pids = spawn_n(N, C, []),
    wait_count(C, N),
    T1 = now_us(),
    R1 = rss(),
    res("us_per_spawn", (T1 - T0) / N),
    res("rss_per_proc", (R1 - R0) / N),
    length(Pids);

%% 2. A ring of N processes; a countdown token makes N * Laps hops.
run("ring", [N, Laps]) ->
    Main = self(),
    Last = spawn(fun() -> receive {next, Nx} -> ring_node(Nx, Main) end end),
    First = lists:foldl(fun(_, Nx) -> spawn(fun() -> ring_node(Nx, Main) end) end,
                        Last, lists:seq(1, N - 1)),
    Last ! {next, First},
    T0 = now_us(),
    First ! N * Laps,
    receive done -> ok end,
    res("hops_per_s", N * Laps / ((now_us() - T0) / 1.0e6));

%% 3a. S senders x K messages to one receiver.
run("fanin", [S, K]) ->
    Main = self(),
    T0 = now_us(),
    Rcv = spawn(fun() -> recv_n(S * K), Main ! done end),
    [spawn(fun() -> send_n(Rcv, K) end) || _ <- lists:seq(1, S)],
    receive done -> ok end,
    res("msgs_per_s", S * K / ((now_us() - T0) / 1.0e6));

%% 3b. One tagged message behind F others: a fresh ref (receive marker), then a scan.
run("selective", [F, Ksince, Kscan]) ->
    Self = self(),
    [Self ! {filler, I} || I <- lists:seq(1, F)],
    T0 = now_us(),
    sel_ref(Ksince),
    T1 = now_us(),
    sel_scan(Kscan),
    T2 = now_us(),
    {message_queue_len, F} = process_info(Self, message_queue_len),
    res("since_us", (T1 - T0) / Ksince),
    res("scan_us", (T2 - T1) / Kscan);

%% 4. A chain of N linked processes; the head crashes; wait for all to be gone.
run("storm", [N]) ->
    Main = self(),
    Base = erlang:system_info(process_count),
    Head = spawn(fun() -> receive crash -> error(boom) end end),
    Last = lists:foldl(fun(_, Prev) ->
                               spawn(fun() -> link(Prev), Main ! linked,
                                              receive _ -> ok end end)
                       end, Head, lists:seq(1, N - 1)),
    [receive linked -> ok end || _ <- lists:seq(1, N - 1)],
    Ref = monitor(process, Last),
    T0 = now_us(),
    Head ! crash,
    receive {'DOWN', Ref, process, Last, _} -> ok end,
    wait_procs(Base),
    res("reap_ms", (now_us() - T0) / 1000);

%% 5. link, unlink, monitor, demonitor on K idle processes.
run("linkmon", [K]) ->
    Ps = [spawn(fun() -> receive _ -> ok end end) || _ <- lists:seq(1, K)],
    T0 = now_us(),
    lists:foreach(fun(P) -> link(P) end, Ps),
    T1 = now_us(),
    lists:foreach(fun(P) -> unlink(P) end, Ps),
    T2 = now_us(),
    Refs = [monitor(process, P) || P <- Ps],
    T3 = now_us(),
    lists:foreach(fun(R) -> demonitor(R) end, Refs),
    T4 = now_us(),
    res("link_us", (T1 - T0) / K),
    res("unlink_us", (T2 - T1) / K),
    res("monitor_us", (T3 - T2) / K),
    res("demonitor_us", (T4 - T3) / K).

spawn_n(0, _C, Acc) -> Acc;
spawn_n(N, C, Acc) ->
    P = spawn(fun() -> atomics:add(C, 1, 1), receive stop -> ok end end),
    spawn_n(N - 1, C, [P | Acc]).

wait_count(C, N) ->
    case atomics:get(C, 1) of
        N -> ok;
        _ -> erlang:yield(), wait_count(C, N)
    end.

ring_node(Next, Main) ->
    receive
        0 -> Main ! done, ring_node(Next, Main);
        K -> Next ! K - 1, ring_node(Next, Main)
    end.

recv_n(0) -> ok;
recv_n(N) -> receive _ -> recv_n(N - 1) end.

send_n(_R, 0) -> ok;
send_n(R, K) -> R ! {msg, K}, send_n(R, K - 1).

%% make_ref() then a receive matching only on it: the compiler sets a receive marker,
%% so only messages newer than the ref are scanned (like beamlet's since=ref).
sel_ref(0) -> ok;
sel_ref(K) ->
    Ref = make_ref(),
    self() ! {Ref, K},
    receive {Ref, _} -> sel_ref(K - 1) end.

sel_scan(0) -> ok;
sel_scan(K) ->
    self() ! {tag, K},
    receive {tag, K} -> sel_scan(K - 1) end.

wait_procs(Base) ->
    case erlang:system_info(process_count) > Base of
        true -> erlang:yield(), wait_procs(Base);
        false -> ok
    end.
