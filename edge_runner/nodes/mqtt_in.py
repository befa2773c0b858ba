"""``mqtt in``: subscribe to a topic filter (or to topics given at run time) and send each
message received."""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from edge_runner.connections import mqtt
from edge_runner.connections.base import State, show_state
from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.nodes.mqtt_broker import _qos, broker_of

V5_PROPERTIES = {
    "ResponseTopic": "responseTopic",
    "CorrelationData": "correlationData",
    "ContentType": "contentType",
    "MessageExpiryInterval": "messageExpiryInterval",
}


class Config(NodeConfig):
    topic: str = ""
    topicType: Literal["", "topic", "dynamic"] = ""  # noqa: N815  # editor field
    qos: int = 2
    # Node-RED's editor writes "auto-detect" into new nodes; its runtime reads a missing or empty
    # field (flows from before the field existed) as utf8, and so do we.
    datatype: Literal["auto-detect", "auto", "utf8", "buffer", "json", "base64"] = "utf8"
    broker: str = ""
    nl: bool = False
    rap: bool = True
    rh: int = 0
    inputs: int = 0

    @field_validator("qos", mode="before")
    @classmethod
    def _qos(cls, value: Any) -> int:
        return _qos(value)

    @field_validator("datatype", mode="before")
    @classmethod
    def _datatype(cls, value: Any) -> Any:
        return value or "utf8"

    @field_validator("rh", "inputs", mode="before")
    @classmethod
    def _ints(cls, value: Any, info: Any) -> Any:
        return 0 if value in ("", None) else int(value) if isinstance(value, str) else value

    @property
    def dynamic(self) -> bool:
        return self.topicType == "dynamic" or self.inputs > 0

    @model_validator(mode="after")
    def _topic(self) -> Config:
        if not self.dynamic:
            mqtt.validate_filter(self.topic.strip())
        return self


SPEC = NodeSpec(
    type="mqtt in",
    version=1,
    category=Category.NETWORK,
    inputs=0,
    outputs=1,
    dynamic_outputs=None,
    label="mqtt in",
    color="#d8bfd8",
    icon="bridge.svg",
    output_labels=("message",),
    help="""Subscribes to an MQTT topic and sends every message it receives.

### Inputs (dynamic subscriptions only)
When the topic is *dynamic* (`inputs: 1`), the node subscribes at run time:
- **action** `subscribe` with **topic** a topic string, an array of them, or
  `{topic, qos}` objects; `unsubscribe` with **topic** (or `true` for all);
  `getSubscriptions` sends the current list as `msg.payload`.

### Outputs
- **payload**: per *datatype* (a node without one, from an older Node-RED, reads `utf8`):
  `auto-detect` (JSON parsed when it parses, else a UTF-8
  string, else bytes), `auto` (string, or bytes when not UTF-8), `utf8`, `buffer` (bytes),
  `json` (a parse failure is a catchable error), `base64` (a base64 string).
- **topic**, **qos**, **retain**; with MQTT 5 also **responseTopic**, **correlationData**
  (bytes), **contentType**, **userProperties** (object) and **messageExpiryInterval**.

### Details
**topic** may use `+` (one level) and `#` (the rest, last). **qos** 0, 1 or 2. The
subscription is renewed after every reconnect; the status follows the broker connection
(green "connected", red "unavailable").
""",
)


@register
class MqttInNode(Node):
    """Subscribes to MQTT topics and sends what arrives."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.connection: mqtt.MqttConnection | None = None
        self.received = 0

    async def start(self) -> None:
        self.connection = broker_of(self, self.cfg.broker).connection
        assert self.connection is not None  # noqa: S101  # broker_of checked it
        self.connection.add_listener(self, self._on_state)
        if not self.cfg.dynamic:
            await self.connection.subscribe(
                self, self.cfg.topic.strip(), self.cfg.qos, self._on_mqtt
            )

    def _on_state(self, state: State, detail: str) -> None:
        if state == "unavailable" and self.connection is not None:
            self.status("red", "ring", mqtt.status_text(self.connection))
        else:
            show_state(self, state, detail)

    def _on_mqtt(self, message: Any) -> None:
        self.received += 1
        msg: Msg = {
            "topic": message.topic.value,
            "qos": message.qos,
            "retain": bool(message.retain),
        }
        props = message.properties
        content_type = ""
        if props is not None:
            for attr, name in V5_PROPERTIES.items():
                if hasattr(props, attr):
                    msg[name] = getattr(props, attr)
            if hasattr(props, "UserProperty"):
                msg["userProperties"] = dict(props.UserProperty)
            content_type = str(msg.get("contentType") or "")
        raw = message.payload
        data = raw if isinstance(raw, bytes) else str(raw).encode() if raw is not None else b""
        try:
            msg["payload"] = self.decode(data, content_type)
        except NodeFailed as exc:
            msg["payload"] = data
            self.error(str(exc), msg)
            return
        self.send(msg)

    def decode(self, data: bytes, content_type: str = "") -> Any:
        kind = self.cfg.datatype
        if kind == "buffer":
            return data
        if kind == "base64":
            return base64.b64encode(data).decode()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if kind in ("utf8", "json"):
                raise NodeFailed(f"payload is not UTF-8 text ({len(data)} bytes)") from None
            return data
        if kind == "json" or (kind == "auto-detect" and "json" in content_type.lower()):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise NodeFailed(f"Failed to parse JSON string: {exc}") from None
        if kind == "auto-detect" and text.strip():
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text

    async def on_message(self, msg: Msg) -> None:
        if not self.cfg.dynamic:
            return
        if self.connection is None:
            raise NeedsUserFix("mqtt in is not connected to an mqtt-broker")
        action = msg.get("action")
        if action == "subscribe":
            for topic, qos in self._topics(msg.get("topic")):
                try:
                    mqtt.validate_filter(topic)
                except ValueError as exc:
                    raise NodeFailed(str(exc)) from None
                await self.connection.subscribe(self, topic, qos, self._on_mqtt)
        elif action == "unsubscribe":
            target = msg.get("topic")
            if target is True:
                await self.connection.unsubscribe(self)
            else:
                for topic, _ in self._topics(target):
                    await self.connection.unsubscribe(self, topic)
        elif action == "getSubscriptions":
            subs = self.connection.subscriptions.get(self, {})
            msg["payload"] = [{"topic": t, "qos": q} for t, (q, _) in sorted(subs.items())]
            self.send(msg)
        else:
            raise NodeFailed(
                f"unsupported action {action!r} (subscribe, unsubscribe, getSubscriptions)"
            )

    def _topics(self, value: Any) -> list[tuple[str, int]]:
        items = value if isinstance(value, list) else [value]
        out: list[tuple[str, int]] = []
        for item in items:
            if isinstance(item, str) and item.strip():
                out.append((item.strip(), self.cfg.qos))
            elif isinstance(item, dict) and isinstance(item.get("topic"), str):
                try:
                    out.append((item["topic"].strip(), _qos(item.get("qos", self.cfg.qos))))
                except ValueError as exc:
                    raise NodeFailed(str(exc)) from None
            else:
                raise NodeFailed(
                    "msg.topic must be a topic, an array of topics or "
                    f"{{topic, qos}} objects, got {item!r}"
                )
        if not out:
            raise NodeFailed("msg.topic names no topic")
        return out

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)
            await conn.unsubscribe(self)
