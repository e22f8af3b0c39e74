"""OTP behaviours built on the public kernel API: GenServer, Supervisor,
DynamicSupervisor, Task, Task.Supervisor, Agent, Registry, Application."""
