"""The ``delay`` node: delay each message, or limit the rate messages pass at."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from edge_runner.contract import Category, Msg, Node, NodeConfig, NodeSpec, register
from edge_runner.nodes._sequence import duration_ms, js_number

if TYPE_CHECKING:
    from edge_runner.contract import NodeApi

# Held messages (timers or rate-limit queue) are bounded; when full the OLDEST held message is
# dropped and a warning logged (first drop, then every 1000th).
MAX_HELD = 10_000
_RATE_UNITS = {"second": 1000.0, "minute": 60_000.0, "hour": 3_600_000.0, "day": 86_400_000.0}


class Config(NodeConfig):
    pauseType: Literal["delay", "delayv", "random", "rate", "queue", "timed"] = "delay"  # noqa: N815
    timeout: str | float = "5"
    timeoutUnits: Literal["milliseconds", "seconds", "minutes", "hours", "days"] = "seconds"  # noqa: N815
    rate: str | float = "1"
    nbRateUnits: str | float = "1"  # noqa: N815
    rateUnits: Literal["second", "minute", "hour", "day"] = "second"  # noqa: N815
    randomFirst: str | float = "1"  # noqa: N815
    randomLast: str | float = "5"  # noqa: N815
    randomUnits: Literal["milliseconds", "seconds", "minutes", "hours", "days"] = "seconds"  # noqa: N815
    drop: bool | str = False
    allowrate: bool = False
    outputs: int = 1

    def rate_ms(self) -> float:
        """Milliseconds between two released messages."""
        rate = js_number(self.rate)
        units = js_number(self.nbRateUnits)
        if not rate == rate or rate <= 0:
            raise ValueError(f"rate must be a positive number, got {self.rate!r}")
        per = units if units == units and units > 0 else 1
        return _RATE_UNITS[self.rateUnits] / float(rate) * float(per)

    @model_validator(mode="after")
    def _check(self) -> Config:
        if duration_ms(self.timeout, self.timeoutUnits) < 0:
            raise ValueError("timeout must not be negative")
        first = duration_ms(self.randomFirst, self.randomUnits)
        last = duration_ms(self.randomLast, self.randomUnits)
        if first < 0 or last < 0:
            raise ValueError("random delays must not be negative")
        self.rate_ms()
        if self.outputs not in (1, 2):
            raise ValueError("outputs must be 1 or 2")
        return self


SPEC = NodeSpec(
    type="delay",
    version=1,
    category=Category.FUNCTION,
    inputs=1,
    outputs=1,
    dynamic_outputs="outputs",
    label="delay",
    color="#E6E0F8",
    icon="timer.svg",
    help="""Delays each message passing through the node or limits the rate at which they pass.

### Inputs
- **delay** *number*: the delay in milliseconds (mode *override delay with msg.delay*).
- **rate** *number*: the rate as milliseconds between messages (when *allow msg.rate* is set).
- **reset**: when present, every held message is discarded and timers cleared (not sent).
- **flush**: when present, held messages are released immediately (a number releases that
  many). A message holding only `flush` is not itself delayed.
- **toFront** *boolean*: in rate-limit mode, put this message at the front of the queue.

### Outputs
The delayed messages. With two outputs, messages dropped by a rate limit go to the second.

### Details
- *Delay each message*: fixed, random between two bounds, or `msg.delay` (milliseconds).
- *Rate limit all messages*: the first passes at once, the rest queue and are released one per
  interval (or, with *drop intermediate*, are dropped or sent to output 2).
- *Rate limit per topic* (`queue`): one message per topic is kept (the latest); topics are
  released in turn. *Send all topics* (`timed`): all kept topics are released each interval.

Held messages are bounded at 10000; past that the oldest is dropped with a warning. The status
shows how many messages are held.
""",
)

DelayConfig = Config  # the node class's ``Config`` attribute shadows the name inside it


@register
class DelayNode(Node):
    """Delay messages or limit their rate, Node-RED style."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: NodeApi, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        if not isinstance(config, DelayConfig):
            raise TypeError("delay node needs its own Config")
        self.cfg = config
        self.mode = config.pauseType
        self.timeout = duration_ms(config.timeout, config.timeoutUnits)
        self.random_first = duration_ms(config.randomFirst, config.randomUnits)
        self.random_last = duration_ms(config.randomLast, config.randomUnits)
        self.fixed_rate = self.rate = config.rate_ms()
        self.drop = config.drop not in (False, "false", "")
        self.timers: dict[int, tuple[asyncio.TimerHandle, Msg]] = {}
        self.next_id = 0
        self.buffer: deque[Msg] = deque()
        self.interval: asyncio.TimerHandle | None = None
        self.last_sent: float | None = None
        self.depth_timer: asyncio.TimerHandle | None = None
        self.dropped = 0

    async def start(self) -> None:
        if self.mode in ("queue", "timed"):
            self._start_interval()

    async def stop(self) -> None:
        for handle, _msg in self.timers.values():
            handle.cancel()
        self.timers.clear()
        self.buffer.clear()
        for pending in (self.interval, self.depth_timer):
            if pending is not None:
                pending.cancel()
        self.interval = self.depth_timer = None

    # ------------------------------------------------------------------ dispatch
    def on_message(self, msg: Msg) -> None:
        if self.mode in ("delay", "delayv", "random"):
            self._delay(msg)
        elif self.mode == "rate":
            if self.drop:
                self._rate_drop(msg)
            else:
                self._rate_queue(msg)
        else:
            self._topic_queue(msg)

    # ------------------------------------------------------------------ delay modes
    def _delay(self, msg: Msg) -> None:
        only_flush = _only(msg, "flush")
        if not only_flush and "reset" not in msg:
            if self.mode == "delay":
                wait = self.timeout
            elif self.mode == "random":
                wait = self.random_first + (self.random_last - self.random_first) * random.random()  # noqa: S311
            else:
                wait = self.timeout
                override = _float(msg.get("delay"))
                if override is not None:
                    wait = max(0.0, override)
            self._hold_timer(msg, wait)
        if "reset" in msg:
            self._clear_timers()
            self.status("blue", "ring", "0")
            return
        if "flush" in msg:
            self._flush_timers(msg["flush"])
            return
        if self.mode == "delayv" or self.timeout > 1000:
            self.status("blue", "dot", str(len(self.timers)))

    def _hold_timer(self, msg: Msg, wait_ms: float) -> None:
        if len(self.timers) >= MAX_HELD:
            oldest = next(iter(self.timers))
            self.timers.pop(oldest)[0].cancel()
            self._note_drop()
        key = self.next_id
        self.next_id += 1
        loop = asyncio.get_running_loop()
        handle = loop.call_later(wait_ms / 1000, self._release_timer, key)
        self.timers[key] = (handle, msg)

    def _release_timer(self, key: int) -> None:
        entry = self.timers.pop(key, None)
        if entry is None:
            return
        if self.mode == "delayv" or self.timeout > 1000:
            self.status("blue", "dot", str(len(self.timers)))
        self.send(entry[1])

    def _clear_timers(self) -> None:
        for handle, _msg in self.timers.values():
            handle.cancel()
        self.timers.clear()

    def _flush_timers(self, count: Any) -> None:
        keys = list(self.timers)
        if isinstance(count, (int, float)) and not isinstance(count, bool):
            keys = keys[: max(0, int(count))]
        for key in keys:
            handle, held = self.timers.pop(key)
            handle.cancel()
            self.send(held)
        self.status("blue", "dot", str(len(self.timers)))

    # ------------------------------------------------------------------ rate limit
    def _rate_queue(self, msg: Msg) -> None:
        held = {k: v for k, v in msg.items() if k != "flush"}
        if len(held) > 1 and not ("reset" in msg and "flush" not in msg):
            self._maybe_new_rate(held)
            if self.interval is not None:
                self._enqueue(held, front=msg.get("toFront") is True)
            else:
                if "reset" not in msg:
                    self.send(held)
                self._start_interval()
                self._report_depth()
        if "flush" in msg:
            count = _flush_count(msg["flush"], len(self.buffer))
            for _ in range(count):
                item = self.buffer.popleft()
                item.pop("flush", None)
                item.pop("reset", None)
                self.send(item)
            if count:
                self._start_interval()
            else:
                self._cancel_interval()
            self.status("blue", "dot", str(len(self.buffer)))
        if "reset" in msg:
            if "flush" not in msg:
                self._cancel_interval()
                self.last_sent = None
            self.buffer.clear()
            self.rate = self.fixed_rate
            self.status("blue", "ring", "0")

    def _rate_drop(self, msg: Msg) -> None:
        if "reset" in msg:
            self.last_sent = None
            self.rate = self.fixed_rate
            self.status("blue", "ring", "0")
            return
        self._maybe_new_rate(msg)
        now = asyncio.get_running_loop().time()
        if self.last_sent is None or (now - self.last_sent) * 1000 > self.rate:
            self.last_sent = now
            self.send(msg)
        elif self.cfg.outputs == 2:
            self.send([None, msg])

    def _topic_queue(self, msg: Msg) -> None:
        self._maybe_new_rate(msg)
        msg.setdefault("topic", "_none_")
        for i, held in enumerate(self.buffer):
            if held.get("topic") == msg["topic"]:
                if self.cfg.outputs == 2:
                    self.send([None, held])
                self.buffer[i] = msg
                break
        else:
            self._enqueue(msg, front=False)
        if "flush" in msg:
            count = _flush_count(msg["flush"], len(self.buffer))
            for _ in range(count):
                item = self.buffer.popleft()
                item.pop("flush", None)
                item.pop("reset", None)
                if len(item) > 2:
                    self.send(item)
            self.status()
        if "reset" in msg:
            self.buffer.clear()
            self.rate = self.fixed_rate
            self.status(text="reset")

    def _maybe_new_rate(self, msg: Msg) -> None:
        if not self.cfg.allowrate or "rate" not in msg:
            return
        rate = _float(msg["rate"])
        if rate is None or rate <= 0 or rate == self.rate:
            return
        self.rate = rate
        if self.interval is not None:
            self._start_interval()

    def _enqueue(self, msg: Msg, front: bool) -> None:
        if len(self.buffer) >= MAX_HELD:
            self.buffer.popleft()
            self._note_drop()
        if front:
            self.buffer.appendleft(msg)
        else:
            self.buffer.append(msg)
        self._report_depth()

    def _start_interval(self) -> None:
        self._cancel_interval()
        self.interval = asyncio.get_running_loop().call_later(self.rate / 1000, self._tick)

    def _cancel_interval(self) -> None:
        if self.interval is not None:
            self.interval.cancel()
            self.interval = None

    def _tick(self) -> None:
        self.interval = None
        if self.mode == "rate":
            if not self.buffer:
                return  # the queue drained: the next message passes at once
            self._start_interval()
            self.send(self.buffer.popleft())
        else:
            self._start_interval()
            if self.mode == "queue":
                if self.buffer:
                    self.send(self.buffer.popleft())
            else:
                while self.buffer:
                    self.send(self.buffer.popleft())
        self._report_depth()

    def _report_depth(self) -> None:
        if self.depth_timer is None:
            self.depth_timer = asyncio.get_running_loop().call_later(0.5, self._show_depth)

    def _show_depth(self) -> None:
        self.depth_timer = None
        self.status("blue", "dot", str(len(self.buffer)))

    def _note_drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            self.warn(
                f"more than {MAX_HELD} messages held; dropped the oldest ({self.dropped} so far)"
            )


def _flush_count(flush: Any, held: int) -> int:
    """How many of ``held`` queued messages ``msg.flush`` releases: a number caps it (at 0..held),
    anything else releases them all."""
    if isinstance(flush, (int, float)) and not isinstance(flush, bool):
        return min(max(0, int(flush)), held)
    return held


def _only(msg: Msg, key: str) -> bool:
    return key in msg and all(k in (key, "_msgid") for k in msg)


def _float(value: Any) -> float | None:
    """JavaScript ``parseFloat`` for numbers and numeric strings; None when NaN."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value else None
    number = js_number(str(value).strip())
    return float(number) if number == number else None
