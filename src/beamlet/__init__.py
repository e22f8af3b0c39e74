"""beamlet: Erlang/OTP's process model for Python.

Lightweight isolated processes that talk by asynchronous messages, selective receive,
links, monitors, registered names and timers, with the semantics of the BEAM
(see docs/ and the numbered rules of docs/semantics.md cited in the code).

Example:
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

from beamlet import ets
from beamlet._core.api import (
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
from beamlet._core.errors import (
    BadArgument,
    BeamletError,
    InvalidTimeout,
    NameTaken,
    NoProcError,
    NotInProcess,
    NotRegistered,
    ProcessExit,
    ProcessFailed,
    Unsendable,
)
from beamlet._core.isolation import Shared
from beamlet._core.messages import Crash, Down, Exit, TimerMsg
from beamlet._core.node import Node, ProcessInfo, is_clean_reason
from beamlet._core.patterns import ANY
from beamlet._core.process import Terminated
from beamlet._core.run import run
from beamlet._core.terms import (
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
    Pid,
    Ref,
)
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
from beamlet.behaviours.names import Via
from beamlet.behaviours.registry import Registry
from beamlet.behaviours.supervisor import Supervisor, SupFlags
from beamlet.behaviours.task import Task, TaskOwnerError
from beamlet.behaviours.task_supervisor import TaskSupervisor

__version__ = "0.1.0"

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
    "start_timer",
    "unalias",
    "unlink",
    "unregister",
    "whereis",
]
