"""``mqtt out``: publish ``msg.payload``, storing messages on disk while the broker is
unreachable and forwarding them in order when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any, ClassVar

from pydantic import field_validator

from edge_runner.connections import mqtt
from edge_runner.connections.base import State
from edge_runner.contract import (
    Category,
    Msg,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeError,
    NodeFailed,
    NodeSpec,
    RetryLater,
    register,
)
from edge_runner.lib.backoff import Backoff
from edge_runner.lib.outbox import Outbox, OutboxError
from edge_runner.nodes.mqtt_broker import _qos, broker_of

FLUSH_BATCH = 100
# Pause after a failed publish before the next try while the connection has not noticed yet
# that the link is gone (a publish can fail at once, e.g. paho has no socket any more).
RETRY_MIN, RETRY_MAX = 0.05, 2.0


class Config(NodeConfig):
    topic: str = ""
    qos: int | None = None  # "" in the editor: msg.qos, else 0
    retain: bool | None = None  # "" in the editor: msg.retain, else false
    respTopic: str = ""  # noqa: N815  # Node-RED's field names
    contentType: str = ""  # noqa: N815
    userProps: Any = ""  # noqa: N815
    correlationData: str = ""  # noqa: N815
    expiry: int | None = None
    broker: str = ""
    # ours: store and forward
    queueLimit: int = 10000  # noqa: N815

    @field_validator("qos", mode="before")
    @classmethod
    def _qos(cls, value: Any) -> Any:
        return None if value in ("", None) else _qos(value)

    @field_validator("retain", mode="before")
    @classmethod
    def _retain(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        return value.strip().lower() == "true" if isinstance(value, str) else bool(value)

    @field_validator("expiry", mode="before")
    @classmethod
    def _expiry(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @field_validator("userProps", mode="before")
    @classmethod
    def _props(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                parsed = json.loads(value)
            except ValueError:
                raise ValueError("userProps must be a JSON object") from None
            if not isinstance(parsed, dict):
                raise ValueError("userProps must be a JSON object")
            return parsed
        return value

    @field_validator("queueLimit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if value < 1:
            raise ValueError("queueLimit must be at least 1")
        return value


SPEC = NodeSpec(
    type="mqtt out",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=0,
    label="mqtt out",
    color="#d8bfd8",
    icon="bridge.svg",
    help="""Publishes `msg.payload` to an MQTT broker.

### Inputs
- **payload**: bytes as they are, strings as UTF-8, numbers and booleans as text, objects
  and arrays as JSON; nothing (null) as an empty message.
- **topic** *string*: used when the node has no topic.
- **qos** (0, 1, 2) and **retain**: used when the node leaves them empty.
- MQTT 5 only: **responseTopic**, **correlationData**, **contentType**,
  **userProperties** (object), **messageExpiryInterval** (seconds), used when the node's
  *respTopic*, *correlationData*, *contentType*, *userProps*, *expiry* are empty.

### Details
**Store and forward.** Every message first goes to a queue on disk (the runner's outbox:
`outbox/mqtt-queue/<node id>.sqlite3` in the runner's data directory), committed within a few
milliseconds, before any network wait; it survives a runner restart or kill. Messages are
published from that queue in their original order, as soon as the broker is reachable. A message
leaves the queue only once the broker acknowledged it (PUBACK for QoS 1, PUBCOMP for QoS 2; for
QoS 0, once it is written to the socket), so a message may be delivered twice after a cut or a
runner kill, but none is lost within the bound, also when the broker freezes or the link goes
half-open. QoS 0 messages written to the socket of a link that then dies are lost, as MQTT
allows: use QoS 1 for data that must arrive. The queue holds at most **queueLimit** messages
(10000 by default); past that the **oldest** are dropped and counted. The status shows it: red
"unavailable, queued 12 (dropped 0)" while the broker is away, yellow "queued 480 (dropped 0)"
while a backlog of more than 100 is sent, green "connected" otherwise. A message without a
topic, or with a topic containing `+`/`#`, is a catchable error.
""",
)


@register
class MqttOutNode(Node):
    """Publishes messages to MQTT through a bounded on-disk outbox (store and forward)."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.connection: mqtt.MqttConnection | None = None
        self.queue: Outbox[mqtt.Outgoing] | None = None
        self.sent = 0
        self._publisher: asyncio.Task[None] | None = None
        self._state: State = "connecting"

    async def start(self) -> None:
        self.connection = broker_of(self, self.cfg.broker).connection
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", self.id)
        outbox = Outbox(
            self.rt.paths.mqtt_queue / f"{safe_id}.sqlite3",
            self.cfg.queueLimit,
            mqtt.encode_outgoing,
            mqtt.decode_outgoing,
            legacy=mqtt.legacy_queue,
        )
        try:
            self.queue = await outbox.open()
        except OutboxError as exc:
            raise NeedsUserFix(str(exc)) from None
        assert self.connection is not None  # noqa: S101  # broker_of checked it
        self.connection.add_listener(self, self._on_state)
        self._publisher = asyncio.get_running_loop().create_task(
            self._publish_loop(self.queue, self.connection), name=f"mqtt out {self.id}"
        )

    # ------------------------------------------------------------------ status
    def _on_state(self, state: State, detail: str) -> None:
        self._state = state
        self._show()

    def _show(self) -> None:
        queued = self.queue.count if self.queue is not None else 0
        dropped = self.queue.dropped if self.queue is not None else 0
        if self._state == "connected" and queued <= FLUSH_BATCH:
            # every message passes through the queue: a short one is normal traffic
            self.status("green", "dot", "connected")
        elif self._state == "connected":
            self.status("yellow", "dot", f"queued {queued} (dropped {dropped})")
        elif self._state in ("unavailable", "connecting") and (queued or dropped):
            self.status("red", "ring", f"{self._reason()}, queued {queued} (dropped {dropped})")
        elif self._state == "unavailable":
            self.status("red", "ring", self._reason())
        elif self._state == "connecting":
            self.status("yellow", "ring", "connecting")

    def _reason(self) -> str:
        return mqtt.status_text(self.connection) if self.connection is not None else "unavailable"

    # ------------------------------------------------------------------ messages
    def outgoing(self, msg: Msg) -> mqtt.Outgoing:
        """The publish ``msg`` asks for, or ``NodeFailed`` saying why it cannot be sent."""
        cfg = self.cfg
        topic = cfg.topic.strip() or msg.get("topic")
        if not isinstance(topic, str) or not topic:
            raise NodeFailed("no topic: set the node's topic or msg.topic")
        if "+" in topic or "#" in topic:
            raise NodeFailed(f"invalid topic {topic!r}: '+' and '#' are not allowed to publish")
        try:
            qos = cfg.qos if cfg.qos is not None else _qos(msg.get("qos", 0))
        except ValueError as exc:
            raise NodeFailed(str(exc)) from None
        retain = cfg.retain if cfg.retain is not None else msg.get("retain") in (True, "true")
        props: dict[str, Any] = {}
        pairs = (
            ("responseTopic", cfg.respTopic),
            ("correlationData", cfg.correlationData),
            ("contentType", cfg.contentType),
            ("userProperties", cfg.userProps or None),
            ("messageExpiryInterval", cfg.expiry),
        )
        for name, configured in pairs:
            value = configured if configured not in ("", None) else msg.get(name)
            if value not in ("", None):
                props[name] = value
        if "messageExpiryInterval" in props:
            try:
                props["messageExpiryInterval"] = int(props["messageExpiryInterval"])
            except (TypeError, ValueError):
                raise NodeFailed("messageExpiryInterval must be a number of seconds") from None
        if "userProperties" in props and not isinstance(props["userProperties"], dict):
            raise NodeFailed("userProperties must be an object")
        return mqtt.Outgoing(topic, mqtt.encode_payload(msg.get("payload")), qos, retain, props)

    def on_message(self, msg: Msg) -> None:
        # Synchronous on purpose: the message is in the outbox before this returns, so no
        # network wait (a frozen broker) can ever hold messages in the node's input queue.
        if self.connection is None or self.queue is None:
            raise NeedsUserFix("mqtt out is not connected to an mqtt-broker")
        self.queue.put(self.outgoing(msg))
        if not self.connection.connected:
            self._show()

    async def _publish_loop(self, queue: Outbox[mqtt.Outgoing], conn: mqtt.MqttConnection) -> None:
        """Publish durable messages oldest first, each acknowledged only once the broker has
        it; after a failure the same message is tried again (after reconnecting)."""
        retry = Backoff(RETRY_MIN, RETRY_MAX)
        while True:
            await queue.wait_ready()
            if not conn.connected:
                await conn.wait_connected()
                continue
            try:
                await self._publish_batch(queue, conn, retry)
            except Exception as exc:  # never let the publisher die: report and carry on
                self.error(f"mqtt out publisher failed: {exc}")
                await asyncio.sleep(retry.next_delay())
            self._show()

    async def _publish_batch(
        self, queue: Outbox[mqtt.Outgoing], conn: mqtt.MqttConnection, retry: Backoff
    ) -> None:
        for item_id, item in await queue.peek_batch(FLUSH_BATCH):
            try:
                await conn.publish(item)
            except RetryLater:
                self._show()
                await asyncio.sleep(retry.next_delay())
                return
            except NodeError as exc:  # the broker will never take it: do not block
                self.error(f"queued message dropped: {exc}")
            else:
                self.sent += 1
                retry.reset()
            queue.ack((item_id,))

    async def stop(self) -> None:
        task, self._publisher = self._publisher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)
        queue, self.queue = self.queue, None
        if queue is not None:
            await queue.close()
