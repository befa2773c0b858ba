"""``inject``: start a flow by hand (the button / ``POST /inject/:id``), once after deploy, at a
fixed interval or on a cron schedule."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, cast

from pydantic import field_validator

from edge_runner.contract import (
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
    set_property,
)
from edge_runner.runtime.typed import to_number

log = logging.getLogger("edge_runner.inject")

# Node-RED refuses intervals above 2^31-1 ms (setInterval's limit) with an error.
MAX_REPEAT_S = 2147483
USER_PROPS = "__user_inject_props__"


class Config(NodeConfig):
    props: list[dict[str, Any]] | None = None
    repeat: str | float | int = ""
    crontab: str = ""
    once: bool = False
    onceDelay: float | str | None = 0.1  # noqa: N815  (Node-RED field name)
    topic: str = ""
    payload: Any = ""
    # No default type: the editor writes "date" for new nodes, but a legacy node without the
    # field sends its payload as a string (Node-RED's runtime reads a missing type as "str").
    payloadType: str | None = None  # noqa: N815

    @field_validator("props")
    @classmethod
    def _props_have_names(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for index, prop in enumerate(value or []):
            if "p" in prop and not isinstance(prop["p"], str):
                raise ValueError(f"props[{index}].p must be a string property name")
            if "vt" in prop and prop["vt"] is not None and not isinstance(prop["vt"], str):
                raise ValueError(f"props[{index}].vt must be a type name")
        return value

    @field_validator("once", mode="before")
    @classmethod
    def _once_bool(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() == "true"
        return bool(value) if value is not None else False

    @field_validator("topic", "crontab", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)

    @field_validator("crontab")
    @classmethod
    def _crontab_parses(cls, value: str) -> str:
        if value.strip():
            make_cron(value)
        return value


def make_cron(expression: str) -> Any:
    """A croniter for Node-RED's crontab: 5 fields, or 6 with seconds first (cronosjs)."""
    from croniter import croniter  # lazy: most flows have no cron inject

    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"invalid crontab {expression!r}: expected 5 or 6 fields")
    try:
        return croniter(expression, second_at_beginning=len(fields) == 6)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"invalid crontab {expression!r}: {exc}") from exc


# Types older editors wrote: Node-RED's runtime passes such a value through as it is, which
# for these (an empty or text payload) is the string.
LEGACY_TYPES = {"none": "str", "string": "str"}


def effective_props(config: Config) -> list[dict[str, Any]]:
    """The props the node sends, with Node-RED's migrations: legacy nodes (no ``props``) send
    payload + topic; editor-format ``{"p": "payload"}`` / ``{"p": "topic", "vt": "str"}`` read
    their value from the ``payload``/``payloadType``/``topic`` fields. A missing payload type
    is ``str``; ``none`` and ``string`` (pre-1.0 editors) are ``str`` too."""
    payload_type = config.payloadType or "str"
    payload_type = LEGACY_TYPES.get(payload_type, payload_type)
    if config.props is None:
        return [
            {"p": "payload", "v": config.payload, "vt": payload_type},
            {"p": "topic", "v": config.topic, "vt": "str"},
        ]
    out: list[dict[str, Any]] = []
    for prop in config.props:
        prop = dict(prop)
        if prop.get("p") == "payload" and "v" not in prop:
            prop["v"], prop["vt"] = config.payload, payload_type
        elif prop.get("p") == "topic" and prop.get("vt") == "str" and "v" not in prop:
            prop["v"] = config.topic
        elif prop.get("vt") in LEGACY_TYPES:
            prop["vt"] = LEGACY_TYPES[prop["vt"]]
        out.append(prop)
    return out


SPEC = NodeSpec(
    type="inject",
    version=1,
    category=Category.COMMON,
    inputs=0,
    outputs=1,
    label="inject",
    color="#a6bbcf",
    icon="inject.svg",
    help="""Injects a message into a flow: by hand (the node's button), once after each deploy,
at an interval, or on a cron schedule.

### Outputs
A message with the configured properties (`props`: property `p` set to value `v` of type `vt`:
`str`, `num`, `bool`, `json`, `bin`, `date`, `jsonata`, `env`, `flow`, `global`, `msg`). Older
flows' `payload`/`payloadType`/`topic` fields are read as the payload and topic properties.

### Details
* **Inject once** (`once`) after `onceDelay` seconds (default 0.1) following a deploy.
* **Repeat** every `repeat` seconds, or on `crontab` (5 fields, or 6 with seconds first;
  local time).
* `POST /inject/<id>` presses the button; a body with `__user_inject_props__` (a list of
  `{p, v, vt}`) replaces the configured properties for that one message.
* A property that cannot be evaluated (bad JSON, bad JSONata) fails the message: nothing is sent
  and the error goes to `catch` nodes.
""",
)


@register
class InjectNode(Node):
    """Injects messages: button / admin API, once after deploy, interval or cron."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.props = effective_props(self.cfg)
        self._timer: asyncio.TimerHandle | None = None
        self._cron: Any = None
        self._stopped = False
        self.repeat_s = self._repeat_seconds()

    def _repeat_seconds(self) -> float:
        raw = self.cfg.repeat
        if raw in ("", None):
            return 0.0
        value = to_number(raw)
        if value != value or value <= 0:  # NaN or not positive: no interval, like Node-RED
            return 0.0
        return float(value)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._stopped = False
        if self.repeat_s > MAX_REPEAT_S:
            self.error(f"interval too long: {self.repeat_s:g} s (maximum {MAX_REPEAT_S} s)")
            self.repeat_s = 0.0
        if self.cfg.crontab and not self.repeat_s:
            self._cron = make_cron(self.cfg.crontab)
        loop = asyncio.get_running_loop()
        if self.cfg.once:
            delay = to_number(self.cfg.onceDelay) if self.cfg.onceDelay not in ("", None) else 0.1
            if delay != delay or delay <= 0:
                delay = 0.1
            self._timer = loop.call_later(float(delay), self._fire_once)
        else:
            self._setup_repeat()

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire_once(self) -> None:
        self._fire()
        self._setup_repeat()

    def _setup_repeat(self) -> None:
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        if self.repeat_s:
            # Anchor every tick to the start so timer latency does not accumulate as drift.
            base = loop.time()
            self._schedule_tick(loop, base, 1)
        elif self._cron is not None:
            self._schedule_cron(loop)

    def _schedule_tick(self, loop: asyncio.AbstractEventLoop, base: float, n: int) -> None:
        def tick() -> None:
            if self._stopped:
                return
            nxt = n + 1
            # After a long stall (suspend, overload) skip missed ticks instead of bursting.
            behind = int((loop.time() - base) / self.repeat_s)
            if behind >= nxt:
                nxt = behind + 1
            self._schedule_tick(loop, base, nxt)
            self._fire()

        self._timer = loop.call_at(base + n * self.repeat_s, tick)

    def _schedule_cron(self, loop: asyncio.AbstractEventLoop) -> None:
        from datetime import datetime

        cron = self._cron
        cron.set_current(datetime.now().astimezone())
        when = float(cron.get_next(float))

        def fire() -> None:
            if self._stopped:
                return
            self._schedule_cron(loop)
            self._fire()

        self._timer = loop.call_later(max(0.0, when - time.time()), fire)

    def _fire(self) -> None:
        self.rt.receive({})

    # ------------------------------------------------------------------ messages
    def on_message(self, msg: Msg) -> None:
        props = self.props
        user = msg.pop(USER_PROPS, None)
        if isinstance(user, dict) and isinstance(user.get("props"), list):
            user = user["props"]
        if isinstance(user, list):
            props = [p for p in user if isinstance(p, dict)]
        errors: list[str] = []
        for prop in props:
            name = prop.get("p")
            if not name:
                continue
            value = prop.get("v", "")
            vtype = prop.get("vt") or "str"
            if vtype == "jsonata" and not value:
                continue
            try:
                result = self.rt.evaluate(
                    "" if value is None and vtype != "json" else value, vtype, msg
                )
                if not set_property(msg, str(name), result):
                    errors.append(f"cannot set msg.{name}")
            except NodeFailed as exc:
                errors.append(str(exc))
            except (ValueError, TypeError) as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            raise NodeFailed("; ".join(errors))
        self.send(msg)
