"""The ``batch`` node: group messages into sequences by count, by interval, or by
concatenating sequences of several topics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, clone_msg, register
from edge_runner.nodes._sequence import js_number, new_id, require_parts

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

MAX_HELD = 10_000  # messages held for one batch; past this the oldest is dropped with a warning


class Topic(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: str


class Config(NodeConfig):
    mode: Literal["count", "interval", "concat"] = "count"
    count: int | str = 10
    overlap: int | str = 0
    interval: float | str = 10
    allowEmptySequence: bool = False  # noqa: N815
    topics: tuple[Topic, ...] = ()
    honourParts: bool = False  # noqa: N815

    def numbers(self) -> tuple[int, int, float]:
        count, overlap, interval = (
            js_number(self.count),
            js_number(self.overlap or 0),
            js_number(self.interval),
        )
        if self.mode == "count" and not count >= 1:
            raise ValueError(f"count must be at least 1, got {self.count!r}")
        if self.mode == "count" and not 0 <= overlap < count:
            raise ValueError("overlap must be at least 0 and less than count")
        if self.mode == "interval" and not interval > 0:
            raise ValueError(f"interval must be positive (seconds), got {self.interval!r}")
        if self.mode == "concat" and not self.topics:
            raise ValueError("concat mode needs at least one topic")
        return int(count) if count >= 1 else 1, int(overlap or 0), float(interval or 0)

    @model_validator(mode="after")
    def _check(self) -> Config:
        self.numbers()
        return self


SPEC = NodeSpec(
    type="batch",
    version=1,
    category=Category.SEQUENCE,
    inputs=1,
    outputs=1,
    label="batch",
    color="#E2D96E",
    icon="batch.svg",
    help="""Creates sequences of messages based on various rules.

### Inputs
Any message; in *concatenate* mode, messages of sequences (`msg.parts`) with a `msg.topic`.

### Outputs
The messages again, each with a new `msg.parts` (`id`, `index`, `count`) describing the
batch it belongs to.

### Details
- **Number of messages**: a batch is sent every *count* messages; *overlap* repeats the last
  messages of a batch at the start of the next.
- **Time interval**: every *interval* seconds the messages received meanwhile are sent as
  one sequence; with *send empty message* an empty interval sends one message without payload.
- **Concatenate sequences**: waits for one complete sequence of each configured topic and
  sends them as one sequence, in the order of the topics.

At most 10000 messages are held; past that the oldest is dropped with a warning.
""",
)

BatchConfig = Config  # the node class's ``Config`` attribute shadows the name inside it


@register
class BatchNode(Node):
    """Group messages into new sequences (count, interval or concatenation)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, BatchConfig):
            raise TypeError("batch node needs its own Config")
        self.cfg = config
        self.count, self.overlap, self.interval = config.numbers()
        self.held: list[Msg] = []
        self.timer: asyncio.TimerHandle | None = None
        self.sequences: dict[str, dict[Any, list[Msg]]] = {t.topic: {} for t in config.topics}
        self.dropped = 0

    async def start(self) -> None:
        if self.cfg.mode == "interval":
            self._arm()

    async def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.held.clear()
        for pending in self.sequences.values():
            pending.clear()

    def on_message(self, msg: Msg) -> None:
        if self.cfg.mode == "concat":
            self._concat(msg)
            return
        if len(self.held) >= MAX_HELD:
            self.held.pop(0)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self.warn(f"more than {MAX_HELD} messages held; dropped the oldest")
        self.held.append(msg)
        if self.cfg.mode == "count" and len(self.held) >= self.count:
            batch = self.held
            self.held = (
                [clone_msg(m) for m in batch[len(batch) - self.overlap :]] if self.overlap else []
            )
            self._emit(batch)

    def _emit(self, batch: list[Msg]) -> None:
        gid = new_id()
        for index, msg in enumerate(batch):
            msg["parts"] = {"id": gid, "index": index, "count": len(batch)}
            self.send(msg)

    def _arm(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._arm()
        batch, self.held = self.held, []
        if batch:
            self._emit(batch)
        elif self.cfg.allowEmptySequence:
            self.send({"parts": {"id": new_id(), "index": 0, "count": 1}})

    def _concat(self, msg: Msg) -> None:
        parts = require_parts(msg)
        topic = msg.get("topic")
        if parts is None or topic not in self.sequences:
            return  # Node-RED ignores messages outside the configured topics/sequences
        self.sequences[topic].setdefault(parts["id"], []).append(msg)
        ready: list[tuple[str, Any]] = []
        for name, pending in self.sequences.items():
            complete = next(
                (
                    gid
                    for gid, msgs in pending.items()
                    if any(m["parts"].get("count") == len(msgs) for m in msgs)
                ),
                None,
            )
            if complete is None:
                return
            ready.append((name, complete))
        batch: list[Msg] = []
        for name, gid in ready:
            msgs = self.sequences[name].pop(gid)
            batch.extend(sorted(msgs, key=lambda m: js_number(m["parts"]["index"])))
        self._emit(batch)
