%% The BEAM reference of bench/bench_behaviours.py: gen_server and supervisor under load.
%% Compiled at run time into a temporary directory; run as
%%   erl -noshell +S 1 -pa DIR -run behaviours_beam main <workload> <ints...>
%%   call K | callc C K | cast N | restart N
%% Prints one line per metric: RESULT {"metric": ..., "value": ...}
-module(behaviours_beam).
%% A gen_server and a supervisor callback module at once (no -behaviour attributes: both
%% want init/1).
-export([main/1, start_child/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(WARMUP, 1000).
-define(BATCH, 100).

main([W | Args]) ->
    run(W, [list_to_integer(A) || A <- Args]),
    erlang:halt(0).

now_us() -> erlang:monotonic_time(microsecond).

res(Metric, Val) ->
    io:format("RESULT {\"metric\": \"~s\", \"value\": ~p}~n", [Metric, float(Val)]).

%% One client, K sequential gen_server:call (monitor + alias based since OTP 24).
run("call", [K]) ->
    {ok, S} = gen_server:start(?MODULE, echo, []),
    call_loop(S, ?WARMUP),
    T0 = now_us(),
    call_loop(S, K),
    res("calls_per_s", K / ((now_us() - T0) / 1.0e6));
%% C client processes x K calls each.
run("callc", [C, K]) ->
    {ok, S} = gen_server:start(?MODULE, echo, []),
    call_loop(S, ?WARMUP),
    Main = self(),
    T0 = now_us(),
    [spawn(fun() -> call_loop(S, K), Main ! done end) || _ <- lists:seq(1, C)],
    [receive done -> ok end || _ <- lists:seq(1, C)],
    res("calls_per_s", C * K / ((now_us() - T0) / 1.0e6));
%% N casts, then one call that returns the count once all are handled.
run("cast", [N]) ->
    {ok, S} = gen_server:start(?MODULE, counter, []),
    cast_loop(S, ?WARMUP),
    ?WARMUP = gen_server:call(S, count),
    T0 = now_us(),
    cast_loop(S, N),
    Count = gen_server:call(S, count, infinity),
    T1 = now_us(),
    Count = ?WARMUP + N,
    res("casts_per_s", N / ((T1 - T0) / 1.0e6));
%% A one_for_one supervisor with one gen_server child; kill the child, time until the
%% restarted child has answered a call. A fresh supervisor every ?BATCH restarts keeps the
%% restart history short (the supervisor scans it on every restart).
run("restart", [N]) ->
    % Supervisor reports go nowhere (as for beamlet): the restart itself is measured.
    ok = logger:set_primary_config(level, critical),
    Samples = restart_batches(N, []),
    Sorted = lists:sort(Samples),
    res("restart_us", lists:nth(N div 2 + 1, Sorted)),
    res("restart_p90_us", lists:nth(N * 9 div 10 + 1, Sorted)).

restart_batches(0, Acc) -> Acc;
restart_batches(N, Acc) ->
    B = min(N, ?BATCH),
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, self(), B}),
    P0 = receive {started, P} -> P end,
    Acc1 = restart_loop(P0, B, Acc),
    ok = gen_server:stop(Sup),
    restart_batches(N - B, Acc1).

restart_loop(_P, 0, Acc) -> Acc;
restart_loop(P, I, Acc) ->
    T0 = now_us(),
    exit(P, kill),
    New = receive {started, Q} -> Q end,
    I = gen_server:call(New, I),
    restart_loop(New, I - 1, [now_us() - T0 | Acc]).

call_loop(_S, 0) -> ok;
call_loop(S, K) -> K = gen_server:call(S, K), call_loop(S, K - 1).

cast_loop(_S, 0) -> ok;
cast_loop(S, N) -> gen_server:cast(S, N), cast_loop(S, N - 1).

start_child(Watcher) -> gen_server:start_link(?MODULE, {child, Watcher}, []).

%% supervisor and gen_server callbacks
init({sup, Watcher, N}) ->
    Flags = #{strategy => one_for_one, intensity => 10 * N + 10, period => 1},
    Child = #{id => child, start => {?MODULE, start_child, [Watcher]}},
    {ok, {Flags, [Child]}};
init({child, Watcher}) ->
    Watcher ! {started, self()},
    {ok, 0};
init(echo) -> {ok, 0};
init(counter) -> {ok, 0}.

handle_call(count, _From, S) -> {reply, S, S};
handle_call(Req, _From, S) -> {reply, Req, S}.

handle_cast(_Req, S) -> {noreply, S + 1}.
