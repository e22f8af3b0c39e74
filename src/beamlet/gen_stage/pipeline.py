"""A declarative pipeline builder (docs/gen_stage.md G17): name the stages, their
counts, demand and partitioning; get one supervisor (`rest_for_one`) running them.

    pipeline = Pipeline("upload", [
        Stage("source", Source, arg=files),
        Stage("encrypt", Encrypt, count=4, max_demand=10),
        Stage("store", Store, count=2, partition_by=lambda e: e.user_id),
        Stage("notify", Notify),
    ])
    sup = await pipeline.start_link()

Every instance is registered as `"{pipeline}.{stage}.{i}"` and subscribes (permanent)
to every instance of the stage before it, once started; a stage with `partition_by`
makes the stage before it use a PartitionDispatcher with one partition per instance.
Stages are supervised in order with `rest_for_one`: a crash restarts the stage and
everything after it, and the restarted instances subscribe again.

The stage classes are ordinary GenStages: the first returns `Producer`, the others
`ProducerConsumer` (the last may be a `Consumer`), without `subscribe_to`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from beamlet._core import BadArgument, Pid
from beamlet.behaviours.child_spec import ChildSpec
from beamlet.behaviours.supervisor import Supervisor
from beamlet.gen_stage.partition_dispatcher import PartitionDispatcher
from beamlet.gen_stage.stage import GenStage, _InitResult

__all__ = ["Pipeline", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One layer of a pipeline: `count` instances of `cls` started with `arg`.

    `max_demand`/`min_demand` apply to its subscriptions to the layer before;
    `partition_by(event) -> int` routes events from that layer by key.

    Examples:
        >>> from beamlet.gen_stage import Batch, GenStage, NoReply, Pipeline, Producer, Stage
        >>> class Uploads(GenStage[None]):
        ...     def init(self, _):
        ...         return Producer(None)
        ...     def handle_demand(self, demand, state):
        ...         return NoReply([], state)
        >>> store = Stage("store", Batch, arg={"max_size": 10}, count=2, partition_by=len)
        >>> upload = Pipeline("upload", [Stage("source", Uploads), store])
        >>> [spec.id for spec in upload.child_specs()]
        ['upload.source.0', 'upload.store.0', 'upload.store.1']
    """

    name: str
    cls: type[GenStage[Any]]
    arg: Any = None
    count: int = 1
    max_demand: int | None = None
    min_demand: int | None = None
    partition_by: Callable[[Any], int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _partitioned(
    cls: type[GenStage[Any]], count: int, key: Callable[[Any], int]
) -> type[GenStage[Any]]:
    """A subclass of `cls` whose init adds a PartitionDispatcher (for the next layer)."""
    orig = cls.init

    async def init(self: Any, arg: Any) -> Any:
        r = orig(self, arg)
        if hasattr(r, "__await__"):
            r = await r
        if isinstance(r, _InitResult):
            if "dispatcher" in r.options:
                raise BadArgument(
                    f"{cls.__qualname__} sets a dispatcher; the pipeline needs its own"
                )
            hash_ = functools.partial(_route, key, count)
            r.options["dispatcher"] = (PartitionDispatcher, {"partitions": count, "hash": hash_})
        return r

    return type(cls.__name__, (cls,), {"init": init, "__qualname__": cls.__qualname__})


def _route(key: Callable[[Any], int], count: int, event: Any) -> tuple[Any, int]:
    return (event, key(event) % count)


async def _start_instance(
    cls: type[GenStage[Any]], arg: Any, name: str, upstream: list[str], opts: list[dict[str, Any]]
) -> Pid | None:
    pid = await cls.start_link(arg, name=name)
    if pid is not None:
        for to, o in zip(upstream, opts, strict=True):
            await GenStage.sync_subscribe(pid, to=to, **o)
    return pid


class Pipeline:
    """A list of `Stage`s run under one `rest_for_one` supervisor.

    Examples:
        >>> from beamlet.gen_stage import GenStage, NoReply, Pipeline, Producer
        >>> from beamlet.gen_stage import ProducerConsumer, Stage
        >>> class Numbers(GenStage[int]):
        ...     def init(self, _):
        ...         return Producer(1)
        ...     def handle_demand(self, demand, n):
        ...         return NoReply(list(range(n, n + demand)), n + demand)
        >>> class Square(GenStage[None]):
        ...     def init(self, _):
        ...         return ProducerConsumer(None)
        ...     def handle_events(self, events, from_, state):
        ...         return NoReply([e * e for e in events], state)
        >>> squares = Pipeline("squares", [Stage("n", Numbers), Stage("sq", Square, max_demand=4)])
        >>> sup = await squares.start_link()
        >>> async for square in GenStage.stream(squares.names("sq")):
        ...     if square > 10:
        ...         break
        >>> square
        16
    """

    def __init__(self, name: str, stages: Sequence[Stage]) -> None:
        if not stages:
            raise BadArgument("a pipeline needs at least one stage")
        seen = set()
        for s in stages:
            if type(s.count) is not int or s.count < 1:
                raise BadArgument(f"stage {s.name!r}: count must be an integer >= 1")
            if s.name in seen:
                raise BadArgument(f"stage name {s.name!r} is used twice")
            seen.add(s.name)
        if stages[0].partition_by is not None:
            raise BadArgument("the first stage has no stage before it to partition")
        self.name = name
        self.stages = list(stages)

    def names(self, stage: str) -> list[str]:
        """The registered names of a stage's instances."""
        for s in self.stages:
            if s.name == stage:
                return [f"{self.name}.{s.name}.{i}" for i in range(s.count)]
        raise BadArgument(f"no stage {stage!r} in pipeline {self.name!r}")

    def child_specs(self) -> list[ChildSpec]:
        """The supervisor's children, in pipeline order."""
        specs = []
        stages = self.stages
        for k, s in enumerate(stages):
            cls = s.cls
            nxt = stages[k + 1] if k + 1 < len(stages) else None
            if nxt is not None and nxt.partition_by is not None:
                cls = _partitioned(cls, nxt.count, nxt.partition_by)
            upstream = self.names(stages[k - 1].name) if k else []
            for i, name in enumerate(self.names(s.name)):
                sub: dict[str, Any] = {"cancel": "permanent", **s.extra}
                if s.max_demand is not None:
                    sub["max_demand"] = s.max_demand
                if s.min_demand is not None:
                    sub["min_demand"] = s.min_demand
                if s.partition_by is not None:
                    sub["partition"] = i
                start = functools.partial(
                    _start_instance, cls, s.arg, name, upstream, [sub] * len(upstream)
                )
                specs.append(ChildSpec(id=name, start=start, shutdown=5.0))
        return specs

    async def start_link(self, **sup_options: Any) -> Pid | None:
        """Start the supervisor (strategy `rest_for_one`; `max_restarts`,
        `max_seconds` and `name` may be given)."""
        return await Supervisor.start_link(
            self.child_specs(), strategy="rest_for_one", **sup_options
        )
