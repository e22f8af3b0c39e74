# The Elixir side of bench/bench_dist.py: the protocol of bench/dist_beam.erl, in Elixir.
#   elixir --name N --cookie C bench/dist_ex.exs serve
#   elixir --name N --cookie C bench/dist_ex.exs client PEER N M
defmodule DistEx do
  def serve do
    Process.register(spawn(&echo/0), :echo)
    Process.register(spawn(fn -> sink(0) end), :sink)
    IO.puts("READY")

    receive do
      :stop -> :ok
    end
  end

  def echo do
    receive do
      {from, x} ->
        send(from, x)
        echo()
    end
  end

  def sink(count) do
    receive do
      {:msg, _} ->
        sink(count + 1)

      {:fin, from} ->
        send(from, {:done, count})
        sink(0)
    end
  end

  def client(peer, n, m) do
    true = Node.connect(peer)
    echo = {:echo, peer}
    sink = {:sink, peer}
    ping(echo, min(n, 1000))
    {ping_us, :ok} = :timer.tc(fn -> ping(echo, n) end)
    blast(sink, min(m, 1000))
    {blast_us, :ok} = :timer.tc(fn -> blast(sink, m) end)
    IO.puts("RESULT pingpong #{ping_us} #{n}")
    IO.puts("RESULT oneway #{blast_us} #{m}")
  end

  defp ping(_echo, 0), do: :ok

  defp ping(echo, k) do
    send(echo, {self(), k})

    receive do
      ^k -> ping(echo, k - 1)
    end
  end

  defp blast(sink, m) do
    send_n(sink, m)
    send(sink, {:fin, self()})

    receive do
      {:done, ^m} -> :ok
    end
  end

  defp send_n(_sink, 0), do: :ok

  defp send_n(sink, k) do
    send(sink, {:msg, k})
    send_n(sink, k - 1)
  end
end

case System.argv() do
  ["serve"] -> DistEx.serve()
  ["client", peer, n, m] -> DistEx.client(String.to_atom(peer), String.to_integer(n), String.to_integer(m))
end
