%% The BEAM side of bench/bench_dist.py: the same echo/sink servers and client loops
%% as bench/dist_py_peer.py, compiled (an -eval loop would run in erl_eval).
%%
%%   serve()                 register `echo` and `sink`, print READY, wait forever
%%   client(Peer, N, M)      N ping-pong round trips with {echo, Peer}, then M one-way
%%                           messages to {sink, Peer}; prints RESULT lines, returns
%%
%% Protocol (shared with the Python peer):
%%   echo:  {From, X}        -> From ! X
%%   sink:  {msg, I}         -> counted
%%          {fin, From}      -> From ! {done, Count}, count reset
-module(dist_beam).
-export([serve/0, client/3, echo/0, sink/1]).

serve() ->
    register(echo, spawn(fun echo/0)),
    register(sink, spawn(fun() -> sink(0) end)),
    io:format("READY~n"),
    receive stop -> ok end.

echo() ->
    receive
        {From, X} -> From ! X, echo()
    end.

sink(Count) ->
    receive
        {msg, _} -> sink(Count + 1);
        {fin, From} -> From ! {done, Count}, sink(0)
    end.

client(Peer, N, M) ->
    true = net_kernel:connect_node(Peer),
    Echo = {echo, Peer},
    Sink = {sink, Peer},
    ping(Echo, min(N, 1000)),                       % warm-up
    {PingUs, ok} = timer:tc(fun() -> ping(Echo, N) end),
    blast(Sink, min(M, 1000)),
    {BlastUs, ok} = timer:tc(fun() -> blast(Sink, M) end),
    io:format("RESULT pingpong ~p ~p~nRESULT oneway ~p ~p~n", [PingUs, N, BlastUs, M]).

ping(_Echo, 0) -> ok;
ping(Echo, K) ->
    Echo ! {self(), K},
    receive K -> ping(Echo, K - 1) end.

blast(Sink, M) ->
    send_n(Sink, M),
    Sink ! {fin, self()},
    receive {done, M} -> ok end.

send_n(_Sink, 0) -> ok;
send_n(Sink, K) -> Sink ! {msg, K}, send_n(Sink, K - 1).
