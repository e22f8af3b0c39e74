"""beamlet: Erlang/OTP's process model for Python.

Lightweight isolated processes that talk by asynchronous messages, selective receive,
links, monitors, registered names and timers, with the semantics of the BEAM
(see docs/ and the numbered rules of docs/semantics.md cited in the code).

Examples:
    >>> import beamlet
    >>> async def echo():
    ...     sender, msg = await beamlet.receive()
    ...     beamlet.send(sender, msg)
    >>> async def main():
    ...     pid = beamlet.spawn(echo)
    ...     beamlet.send(pid, (beamlet.self(), "hi"))
    ...     return await beamlet.receive()
    >>> beamlet.run(main)
    'hi'
"""

from importlib import metadata as _metadata

from beamlet import ets
from beamlet._core import (
    ANY,
    CALLING_SELF,
    KILL,
    KILLED,
    NOCONNECTION,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    TIMEOUT,
    UNDEFINED,
    Atom,
    BadArgument,
    BeamletError,
    Crash,
    Down,
    Exit,
    InvalidTimeout,
    NameTaken,
    Node,
    NoProcError,
    NotInProcess,
    NotRegistered,
    Pid,
    ProcessExit,
    ProcessFailed,
    ProcessInfo,
    Ref,
    Shared,
    Terminated,
    TimerMsg,
    Unsendable,
    alias,
    cancel_timer,
    current_node,
    demonitor,
    exit,
    is_alive,
    link,
    make_ref,
    monitor,
    node_name,
    process_flag,
    process_info,
    processes,
    read_timer,
    receive,
    register,
    registered,
    run_in_thread,
    self,
    send,
    send_after,
    sleep,
    spawn,
    spawn_link,
    spawn_monitor,
    start_timer,
    unalias,
    unlink,
    unregister,
    whereis,
)
from beamlet._run import run
from beamlet.behaviours import sys
from beamlet.behaviours.agent import Agent
from beamlet.behaviours.application import run_app
from beamlet.behaviours.child_spec import ChildSpec, InvalidChildSpec, StartError
from beamlet.behaviours.dynamic_supervisor import DynamicSupervisor, MaxChildren
from beamlet.behaviours.gen_server import (
    HIBERNATE,
    CallExit,
    Continue,
    From,
    GenServer,
    Ignore,
    InitError,
    NoReply,
    Ok,
    Reply,
    Stop,
)
from beamlet.behaviours.names import Global, Via
from beamlet.behaviours.reasons import is_clean_reason
from beamlet.behaviours.registry import Registry
from beamlet.behaviours.supervisor import Supervisor, SupFlags
from beamlet.behaviours.task import Task, TaskOwnerError
from beamlet.behaviours.task_supervisor import TaskSupervisor

try:  # the version is declared once, in pyproject.toml
    __version__: str = _metadata.version("beamlet")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"

__all__ = [
    "ANY",
    "HIBERNATE",
    "Agent",
    "CallExit",
    "ChildSpec",
    "Continue",
    "DynamicSupervisor",
    "From",
    "GenServer",
    "Global",
    "Ignore",
    "InitError",
    "InvalidChildSpec",
    "MaxChildren",
    "NoReply",
    "Ok",
    "Registry",
    "Reply",
    "StartError",
    "Stop",
    "SupFlags",
    "Supervisor",
    "Task",
    "TaskOwnerError",
    "TaskSupervisor",
    "Via",
    "current_node",
    "ets",
    "run_app",
    "CALLING_SELF",
    "KILL",
    "KILLED",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "TIMEOUT",
    "UNDEFINED",
    "Atom",
    "BadArgument",
    "BeamletError",
    "Crash",
    "Down",
    "Exit",
    "InvalidTimeout",
    "NameTaken",
    "NoProcError",
    "Node",
    "NotInProcess",
    "NotRegistered",
    "Pid",
    "ProcessExit",
    "ProcessFailed",
    "ProcessInfo",
    "Ref",
    "Shared",
    "Terminated",
    "TimerMsg",
    "Unsendable",
    "alias",
    "cancel_timer",
    "demonitor",
    "exit",
    "is_alive",
    "is_clean_reason",
    "link",
    "make_ref",
    "monitor",
    "node_name",
    "process_flag",
    "process_info",
    "processes",
    "read_timer",
    "receive",
    "register",
    "registered",
    "run",
    "run_in_thread",
    "self",
    "send",
    "send_after",
    "sleep",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "sys",
    "start_timer",
    "unalias",
    "unlink",
    "unregister",
    "whereis",
]


def _export_as_beamlet() -> None:
    """Name `beamlet` as the home of what it exports (reprs, docs and tracebacks then show
    `beamlet.spawn`, not the private module that defines it), as trio does."""
    for name in __all__:
        obj = globals()[name]
        own = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__code__"))
        if own and getattr(obj, "__module__", "").startswith("beamlet."):
            obj.__module__ = "beamlet"


_export_as_beamlet()
