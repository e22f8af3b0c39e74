"""GenStage for beamlet: demand-driven stages, wire-compatible with Elixir's GenStage
(docs/gen_stage.md).

Examples:
    >>> from beamlet.gen_stage import Consumer, GenStage, NoReply, Producer
"""

from beamlet.behaviours.gen_server import HIBERNATE, Ignore, Stop
from beamlet.gen_stage.batch import Batch
from beamlet.gen_stage.broadcast_dispatcher import BroadcastDispatcher
from beamlet.gen_stage.buffer import Buffer
from beamlet.gen_stage.consumer_supervisor import ConsumerSupervisor
from beamlet.gen_stage.dispatcher import DemandDispatcher, Dispatcher, SubscriptionRefused
from beamlet.gen_stage.from_iterable import from_async_iterable, from_iterable
from beamlet.gen_stage.partition_dispatcher import NONE, PartitionDispatcher
from beamlet.gen_stage.pipeline import Pipeline, Stage
from beamlet.gen_stage.protocol import NIL, SubscriptionFrom, events_sender, send_events
from beamlet.gen_stage.stage import (
    Automatic,
    BadOpts,
    Consumer,
    GenStage,
    Manual,
    NoReply,
    Producer,
    ProducerConsumer,
    Reply,
    SubscribeError,
    split_batches,
)
from beamlet.gen_stage.stream import stream

__all__ = [
    "HIBERNATE",
    "NIL",
    "NONE",
    "Automatic",
    "Batch",
    "BadOpts",
    "BroadcastDispatcher",
    "Buffer",
    "Consumer",
    "ConsumerSupervisor",
    "DemandDispatcher",
    "Dispatcher",
    "GenStage",
    "Ignore",
    "Manual",
    "NoReply",
    "PartitionDispatcher",
    "Pipeline",
    "Producer",
    "ProducerConsumer",
    "Reply",
    "Stop",
    "Stage",
    "SubscribeError",
    "SubscriptionFrom",
    "SubscriptionRefused",
    "from_async_iterable",
    "from_iterable",
    "events_sender",
    "send_events",
    "split_batches",
    "stream",
]
