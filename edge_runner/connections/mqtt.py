"""MQTT: one aiomqtt client per broker endpoint, shared subscriptions, and the byte form of
an outgoing message that ``mqtt out`` keeps in the runner's outbox.

``MqttConnection`` re-subscribes every filter its users hold after each (re)connect, dispatches
each incoming message to the users whose filter matches, publishes the birth message on connect
and the close message on a graceful shutdown (the broker sends the will otherwise).

A request that finds the link dead (a QoS 1/2 acknowledgement that does not come within
``PUBLISH_TIMEOUT``: a frozen broker, a half-open TCP link) makes the supervisor drop the
client and reconnect, instead of waiting for the keepalive to notice.

aiomqtt/paho are imported inside functions: the engine imports every node module at startup.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_runner.connections.base import ConnectionPool, SharedConnection
from edge_runner.contract import NeedsUserFix, NodeError, NodeFailed, RetryLater, Services

log = logging.getLogger("edge_runner.connections.mqtt")

PUBLISH_TIMEOUT = 10.0  # seconds for a QoS 1/2 acknowledgement before the link counts as lost
CONNECT_TIMEOUT = 15.0  # seconds from dialling to the broker's CONNACK


@dataclass(frozen=True)
class Outgoing:
    """One message to publish; ``properties`` holds MQTT 5 publish properties by Node-RED name
    (``contentType``, ``userProperties``, ``messageExpiryInterval``, ``responseTopic``,
    ``correlationData``)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int = 1883
    transport: str = "tcp"  # or "websockets"
    ws_path: str = "/"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    clean_session: bool = True
    protocol: int = 4  # 3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0
    tls: ssl.SSLContext | None = field(default=None, compare=False, hash=False)
    tls_key: str = ""  # identifies the TLS settings in the endpoint key
    will: Outgoing | None = None
    birth: Outgoing | None = None
    close: Outgoing | None = None
    session_expiry: int | None = None
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0

    @property
    def key(self) -> str:
        scheme = (
            ("wss" if self.tls else "ws")
            if self.transport == "websockets"
            else ("mqtts" if self.tls else "mqtt")
        )
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}/{self.client_id}#{self.tls_key}"


MessageCallback = Callable[[Any], None]

# CONNACK codes a retry cannot fix (MQTT 3.1.1 and 5.0), with the short reason shown in status
REFUSED: dict[int, str] = {
    2: "client id rejected",
    4: "bad user name or password",
    5: "not authorised",
    0x85: "client id rejected",
    0x86: "bad user name or password",
    0x87: "not authorised",
    0x8A: "banned",
    0x8C: "bad authentication method",
}


def status_text(conn: SharedConnection) -> str:
    """The status text of an unavailable connection: the short reason when the user must fix
    something (bad password, untrusted certificate), else "unavailable"."""
    failure = conn.failure
    if isinstance(failure, NeedsUserFix):
        return str(failure).split(":", 1)[0][:60]
    return "unavailable"


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest; ``$share/g/`` prefix ignored)."""
    if pattern.startswith("$share/"):
        pattern = pattern.split("/", 2)[2] if pattern.count("/") >= 2 else pattern
    pat, top = pattern.split("/"), topic.split("/")
    if topic.startswith("$") and pat[0] in ("+", "#"):
        return False
    for i, part in enumerate(pat):
        if part == "#":
            return True
        if i >= len(top) or (part != "+" and part != top[i]):
            return False
    return len(pat) == len(top)


def validate_filter(topic: str) -> str:
    """A subscription filter, or ``ValueError`` saying what is wrong with it."""
    if not topic:
        raise ValueError("topic is empty")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"invalid topic {topic!r}: '#' must be a whole, last level")
        if "+" in level and level != "+":
            raise ValueError(f"invalid topic {topic!r}: '+' must be a whole level")
    return topic


def mqtt5_properties(props: dict[str, Any]) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho is untyped
    if props.get("contentType"):
        out.ContentType = str(props["contentType"])
    if props.get("responseTopic"):
        out.ResponseTopic = str(props["responseTopic"])
    if props.get("correlationData") not in (None, ""):
        data = props["correlationData"]
        out.CorrelationData = data if isinstance(data, bytes) else str(data).encode()
    if props.get("messageExpiryInterval") not in (None, ""):
        out.MessageExpiryInterval = int(props["messageExpiryInterval"])
    user = props.get("userProperties")
    if isinstance(user, dict) and user:
        out.UserProperty = [(str(k), str(v)) for k, v in user.items()]
    return out


class MqttConnection(SharedConnection):
    """The shared aiomqtt client of one broker endpoint."""

    kind = "mqtt"

    def __init__(self, endpoint: MqttEndpoint) -> None:
        label = f"{endpoint.host}:{endpoint.port}"
        super().__init__(endpoint.key, label, endpoint.reconnect_min, endpoint.reconnect_max)
        self.endpoint = endpoint
        self.client: Any = None
        self.subscriptions: dict[object, dict[str, tuple[int, MessageCallback]]] = {}

    # ------------------------------------------------------------------ link
    async def _connect(self) -> None:
        import aiomqtt

        ep = self.endpoint
        will = None
        if ep.will is not None:
            will = aiomqtt.Will(
                ep.will.topic,
                ep.will.payload,
                ep.will.qos,
                ep.will.retain,
                mqtt5_properties(ep.will.properties) if ep.protocol == 5 else None,
            )
        protocol = {
            3: aiomqtt.ProtocolVersion.V31,
            4: aiomqtt.ProtocolVersion.V311,
            5: aiomqtt.ProtocolVersion.V5,
        }[ep.protocol]
        properties = None
        if ep.protocol == 5 and ep.session_expiry is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
            properties.SessionExpiryInterval = ep.session_expiry
        self.client = aiomqtt.Client(
            ep.host,
            ep.port,
            username=ep.username,
            password=ep.password,
            identifier=ep.client_id or None,
            protocol=protocol,
            will=will,
            clean_session=ep.clean_session if ep.protocol != 5 else None,
            transport="websockets" if ep.transport == "websockets" else "tcp",
            websocket_path=ep.ws_path if ep.transport == "websockets" else None,
            keepalive=ep.keepalive,
            timeout=PUBLISH_TIMEOUT,
            tls_context=ep.tls,
            properties=properties,
            logger=log,
        )
        await self._enter(self.client)
        for topic, qos in self._filters().items():
            await self.client.subscribe(topic, qos)
        if ep.birth is not None:
            await self._publish_on(self.client, ep.birth)

    async def _enter(self, client: Any) -> None:
        """Connect ``client``, failing as soon as the link drops before the broker's CONNACK.

        aiomqtt ignores a disconnect before CONNACK and waits forever: a broker that refuses a
        TLS client certificate after the handshake (TLS 1.3) would leave the node
        "connecting" for good. paho's public ``on_disconnect``/``on_log`` hooks tell when and
        why; aiomqtt keeps its paho client in ``_client``."""
        from paho.mqtt.client import MQTT_LOG_ERR

        paho = client._client  # aiomqtt has no public hook for this
        loop = asyncio.get_running_loop()
        lost = asyncio.Event()
        errors: list[str] = []
        chained = paho.on_disconnect

        def on_disconnect(*args: Any) -> None:
            chained(*args)
            loop.call_soon_threadsafe(lost.set)

        def on_log(_client: Any, _userdata: Any, level: int, text: str) -> None:
            if level == MQTT_LOG_ERR:
                errors.append(text)

        paho.on_disconnect = on_disconnect
        paho.on_log = on_log
        enter = asyncio.ensure_future(client.__aenter__())
        dropped = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait(
                (enter, dropped), timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            dropped.cancel()
            if not enter.done():
                enter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await enter
        if not enter.cancelled():
            enter.result()  # connected, or aiomqtt's own error (refused, unreachable)
            return
        reason = errors[-1] if errors else ""
        from edge_runner.lib.tls import tls_failure

        tls = tls_failure(RuntimeError(reason)) if reason else None
        if tls is not None:
            raise tls
        if lost.is_set():
            raise RetryLater(f"connection lost before the broker answered: {reason or 'closed'}")
        raise RetryLater(f"no answer from the broker within {CONNECT_TIMEOUT:g} s")

    async def _serve(self) -> None:
        reader = asyncio.ensure_future(self._read())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait((reader, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, lost):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if reader.done() and not reader.cancelled():
            reader.result()  # the broker closed the link, or aiomqtt's error
        # else mark_lost() set the detail

    async def _read(self) -> None:
        async for message in self.client.messages:
            self._dispatch(message)
        self.detail = "broker closed the connection"

    async def _disconnect(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await client.__aexit__(None, None, None)

    async def close(self) -> None:
        if self.endpoint.close is not None and self.client is not None and self.connected:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._publish_on(self.client, self.endpoint.close)
        await super().close()

    def classify(self, exc: BaseException) -> NodeError:
        from aiomqtt.exceptions import MqttCodeError, MqttConnectError

        if isinstance(exc, NodeError):
            return exc
        if isinstance(exc, MqttConnectError):
            code = getattr(exc.rc, "value", exc.rc)
            refused = REFUSED.get(code) if isinstance(code, int) else None
            if refused is not None:
                return NeedsUserFix(f"{refused}: the broker refused the login ({exc})")
        from edge_runner.lib.tls import tls_failure

        tls = tls_failure(exc)
        if tls is not None:
            return tls
        if isinstance(exc, MqttCodeError):
            return RetryLater(str(exc))
        return super().classify(exc)

    # ------------------------------------------------------------------ subscriptions
    def _filters(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for subs in self.subscriptions.values():
            for topic, (qos, _) in subs.items():
                merged[topic] = max(qos, merged.get(topic, 0))
        return merged

    def _dispatch(self, message: Any) -> None:
        topic = message.topic.value
        for subs in list(self.subscriptions.values()):
            for pattern, (_, callback) in list(subs.items()):
                if topic_matches(pattern, topic):
                    try:
                        callback(message)
                    except Exception:  # one subscriber's bug must not stop the others
                        log.exception("mqtt message callback failed")
                    break  # one delivery per subscriber even when several filters match

    async def subscribe(
        self, owner: object, topic: str, qos: int, callback: MessageCallback
    ) -> None:
        """Deliver messages matching ``topic`` to ``callback`` (now and after reconnects)."""
        validate_filter(topic)
        before = self._filters().get(topic, -1)
        self.subscriptions.setdefault(owner, {})[topic] = (qos, callback)
        if self.client is not None and self.connected and qos > before:
            try:
                await self.client.subscribe(topic, qos)
            except Exception as exc:
                failure = self.classify(exc)
                self.mark_lost(str(failure))
                raise failure from exc

    async def unsubscribe(self, owner: object, topic: str | None = None) -> None:
        """Drop ``owner``'s filter ``topic`` (every filter when None)."""
        subs = self.subscriptions.get(owner, {})
        topics = list(subs) if topic is None else [topic] if topic in subs else []
        for name in topics:
            del subs[name]
        if not subs:
            self.subscriptions.pop(owner, None)
        still = self._filters()
        gone = [t for t in topics if t not in still]
        if gone and self.client is not None and self.connected:
            with contextlib.suppress(Exception):
                await self.client.unsubscribe(gone)

    # ------------------------------------------------------------------ publishing
    async def publish(self, item: Outgoing) -> None:
        """Publish and, for QoS 1/2, wait for the broker's acknowledgement."""
        if self.client is None or not self.connected:
            raise RetryLater(f"broker {self.label} unavailable")
        await self._publish_on(self.client, item)

    async def _publish_on(self, client: Any, item: Outgoing) -> None:
        props = (
            mqtt5_properties(item.properties)
            if (self.endpoint.protocol == 5 and item.properties)
            else None
        )
        try:
            await client.publish(
                item.topic, item.payload, item.qos, item.retain, props, timeout=PUBLISH_TIMEOUT
            )
        except Exception as exc:
            failure = self.classify(exc)
            if isinstance(failure, RetryLater):
                self.mark_lost(str(failure))
            raise failure from exc


POOL_KEY = "mqtt.connections"


def pool_of(services: Services) -> ConnectionPool[MqttEndpoint, MqttConnection]:
    """The engine's mqtt connections, one per endpoint (an engine service)."""
    return services.get(POOL_KEY, lambda: ConnectionPool(MqttConnection))


# ------------------------------------------------------------------------------ outbox form


def encode_outgoing(item: Outgoing) -> bytes:
    """``item`` as stored in the outbox: a JSON header line, then the payload bytes."""
    header = json.dumps(
        [item.topic, item.qos, item.retain, item.properties],
        separators=(",", ":"),
        default=_bytes_json,
    )
    return header.encode() + b"\n" + item.payload


def decode_outgoing(body: bytes) -> Outgoing:
    header, _, payload = body.partition(b"\n")
    topic, qos, retain, props = json.loads(header, object_hook=_json_bytes)
    return Outgoing(topic, payload, qos, retain, props)


def legacy_queue(db: sqlite3.Connection) -> list[bytes]:
    """For ``Outbox(legacy=...)``: the messages a runner older than the outbox left in its
    ``queue`` table (same file), in outbox form; the table is dropped."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='queue'").fetchone():
        return []
    rows = db.execute("SELECT topic, payload, qos, retain, props FROM queue ORDER BY id")
    bodies = [
        encode_outgoing(
            Outgoing(
                topic, bytes(payload), qos, bool(retain), json.loads(props, object_hook=_json_bytes)
            )
        )
        for topic, payload, qos, retain, props in rows
    ]
    db.execute("DROP TABLE queue")
    return bodies


def _bytes_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    return str(value)  # what publishing does with it too (mqtt5_properties)


def _json_bytes(obj: dict[str, Any]) -> Any:
    if set(obj) == {"__bytes__"}:
        return base64.b64decode(obj["__bytes__"])
    return obj


def encode_payload(value: Any) -> bytes:
    """Node-RED's conversion of ``msg.payload`` for publishing."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)).encode()  # JavaScript prints 1.0 as "1"
    if isinstance(value, (int, float)):
        return str(value).encode()
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise NodeFailed(f"payload cannot be sent: {exc}") from exc
