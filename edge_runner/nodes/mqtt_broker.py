"""``mqtt-broker``: the config node naming one MQTT broker connection, with Node-RED's field
names (birth/close/will messages, MQTT 3.1.1 and 5, TLS, credentials)."""

from __future__ import annotations

import ssl
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import field_validator

from edge_runner.connections import mqtt
from edge_runner.connections.base import State
from edge_runner.contract import Category, NeedsUserFix, Node, NodeConfig, NodeSpec, register


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _qos(value: Any) -> int:
    if value in ("", None):
        return 0
    try:
        qos = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"QoS must be 0, 1 or 2, got {value!r}") from None
    if qos not in (0, 1, 2):
        raise ValueError(f"QoS must be 0, 1 or 2, got {value!r}")
    return qos


class Config(NodeConfig):
    broker: str = ""
    port: int = 1883
    tls: str = ""
    clientid: str = ""
    autoConnect: bool = True  # noqa: N815  # Node-RED's field names
    usetls: bool = False
    verifyservercert: bool = True  # legacy (before tls-config nodes)
    compatmode: bool = False  # legacy: MQTT 3.1
    protocolVersion: int = 4  # noqa: N815
    keepalive: int = 60
    cleansession: bool = True
    autoUnsubscribe: bool = True  # noqa: N815
    sessionExpiry: int | None = None  # noqa: N815
    userProps: Any = ""  # noqa: N815
    birthTopic: str = ""  # noqa: N815
    birthQos: int = 0  # noqa: N815
    birthRetain: bool = False  # noqa: N815
    birthPayload: str = ""  # noqa: N815
    birthMsg: dict[str, Any] = {}  # noqa: N815
    closeTopic: str = ""  # noqa: N815
    closeQos: int = 0  # noqa: N815
    closeRetain: bool = False  # noqa: N815
    closePayload: str = ""  # noqa: N815
    closeMsg: dict[str, Any] = {}  # noqa: N815
    willTopic: str = ""  # noqa: N815
    willQos: int = 0  # noqa: N815
    willRetain: bool = False  # noqa: N815
    willPayload: str = ""  # noqa: N815
    willMsg: dict[str, Any] = {}  # noqa: N815
    # credentials (accepted here until the flow gives them through the credential store)
    user: str = ""
    password: str = ""
    # ours: reconnect backoff in ms
    reconnectPeriod: int = 1000  # noqa: N815
    reconnectMaxPeriod: int = 30000  # noqa: N815

    @field_validator(
        "autoConnect",
        "usetls",
        "verifyservercert",
        "compatmode",
        "cleansession",
        "autoUnsubscribe",
        "birthRetain",
        "closeRetain",
        "willRetain",
        mode="before",
    )
    @classmethod
    def _flags(cls, value: Any) -> bool:
        return _flag(value)

    @field_validator("birthQos", "closeQos", "willQos", mode="before")
    @classmethod
    def _qos(cls, value: Any) -> int:
        return _qos(value)

    @field_validator(
        "port",
        "keepalive",
        "protocolVersion",
        "reconnectPeriod",
        "reconnectMaxPeriod",
        mode="before",
    )
    @classmethod
    def _ints(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return cls.model_fields[info.field_name].default
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"{info.field_name} must be a number, got {value!r}") from None
        return value

    @field_validator("sessionExpiry", mode="before")
    @classmethod
    def _expiry(cls, value: Any) -> Any:
        return None if value in ("", None) else int(value)

    @field_validator("birthMsg", "closeMsg", "willMsg", mode="before")
    @classmethod
    def _msg(cls, value: Any) -> Any:
        return {} if value in (None, "") else value

    @field_validator("protocolVersion")
    @classmethod
    def _protocol(cls, value: int) -> int:
        if value not in (3, 4, 5):
            raise ValueError(f"protocolVersion must be 3, 4 or 5, got {value}")
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"port must be 1..65535, got {value}")
        return value


SPEC = NodeSpec(
    type="mqtt-broker",
    version=1,
    category=Category.CONFIG,
    inputs=0,
    outputs=0,
    is_config=True,
    label="mqtt broker",
    color="#d8bfd8",
    credentials=("user", "password"),
    help="""A connection to an MQTT broker, shared by the `mqtt in` and `mqtt out` nodes.

### Connection
- **broker**: host name or address, or a URL `mqtt://`, `mqtts://`, `ws://`, `wss://`
  (the URL's port and path win over **port**).
- **usetls** with **tls** (a `tls-config` node: `ca`, `cert`, `key` file paths,
  `verifyservercert`, `servername`): connect with TLS.
- **clientid**: empty picks a random id. **keepalive** seconds, **cleansession**.
- **protocolVersion** `4` (MQTT 3.1.1, default), `5` (MQTT 5, with **sessionExpiry**
  seconds) or `3` (3.1).
- **user** / **password** are credentials (stored encrypted, apart from the flow).

### Messages
- **birthTopic** / **birthPayload** / **birthQos** / **birthRetain**: published after
  every (re)connect.
- **closeTopic** / ...: published before a graceful disconnect (redeploy, shutdown).
- **willTopic** / ...: the last will the broker publishes if the runner vanishes.

### Details
Nodes using the same broker, port, user and client id share **one** connection. When the broker
goes away every node using it turns red ("unavailable") once and one warning is logged; the
runner reconnects after a random pause of up to **reconnectPeriod** milliseconds, that bound
doubling per failed attempt up to **reconnectMaxPeriod** (full jitter: a fleet does not retry in
step), and turns green once when back. Subscriptions are renewed after each reconnect.
Problems only the user can fix show their reason in the status of the broker and of every node
using it — `not authorised`, `bad user name or password`, `certificate verify failed` (the
broker's certificate is not signed by the trusted CA, or does not name the host or
*servername*), `client certificate rejected` — and are retried only at the slow end of the
backoff (**reconnectMaxPeriod**), so a wrong password never turns into a retry storm. Without a
`tls-config` node, **usetls** trusts the system's roots and **verifyservercert** decides
whether the broker's certificate is checked.
*autoConnect*, *autoUnsubscribe* and *userProps* are accepted for compatibility; the runner
always connects at deploy.
""",
)


@register
class MqttBrokerNode(Node):
    """Holds the shared connection to one MQTT broker."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.connection: mqtt.MqttConnection | None = None
        self.protocol = 3 if self.cfg.compatmode else self.cfg.protocolVersion

    def _message(self, prefix: str) -> mqtt.Outgoing | None:
        topic = getattr(self.cfg, f"{prefix}Topic").strip()
        if not topic:
            return None
        extra = getattr(self.cfg, f"{prefix}Msg") or {}
        props = {
            k: extra[k]
            for k in (
                "contentType",
                "userProperties",
                "responseTopic",
                "correlationData",
                "messageExpiryInterval",
            )
            if k in extra
        }
        return mqtt.Outgoing(
            topic,
            mqtt.encode_payload(getattr(self.cfg, f"{prefix}Payload")),
            getattr(self.cfg, f"{prefix}Qos"),
            getattr(self.cfg, f"{prefix}Retain"),
            props,
        )

    def _tls(self) -> tuple[ssl.SSLContext, str]:
        """The TLS context and a key naming its settings (for the shared connection)."""
        if self.cfg.tls:
            from edge_runner.nodes.tls_config import tls_of

            tls = tls_of(self, self.cfg.tls)
            return tls.client_context(), f"{self.cfg.tls}:{tls.fingerprint}"
        from edge_runner.nodes.tls_config import new_client_context

        # usetls without a tls-config node (older flows): system roots, the broker's own flag
        context = new_client_context()
        if not self.cfg.verifyservercert:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context, f"system:{int(self.cfg.verifyservercert)}"

    def endpoint(self) -> mqtt.MqttEndpoint:
        cfg = self.cfg
        text = cfg.broker.strip()
        if not text:
            raise NeedsUserFix("broker is empty")
        host, port, transport, path, secure = text, cfg.port, "tcp", "/", cfg.usetls
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme not in ("mqtt", "mqtts", "tcp", "tls", "ssl", "ws", "wss"):
                raise NeedsUserFix(f"unsupported broker URL scheme {parts.scheme!r}")
            host = parts.hostname or ""
            secure = secure or parts.scheme in ("mqtts", "tls", "ssl", "wss")
            transport = "websockets" if parts.scheme in ("ws", "wss") else "tcp"
            port = parts.port or {
                "ws": 80,
                "wss": 443,
                "mqtts": 8883,
                "tls": 8883,
                "ssl": 8883,
            }.get(parts.scheme, 1883)
            path = parts.path or "/"
        tls, tls_key = self._tls() if secure else (None, "")
        creds = self.rt.credentials
        user = str(creds.get("user") or cfg.user or "") or None
        password = str(creds.get("password") or cfg.password or "") or None
        return mqtt.MqttEndpoint(
            host=host,
            port=port,
            transport=transport,
            ws_path=path,
            client_id=cfg.clientid.strip(),  # empty: a random id per connection
            username=user,
            password=password,
            keepalive=cfg.keepalive,
            clean_session=cfg.cleansession,
            protocol=self.protocol,
            tls=tls,
            tls_key=tls_key,
            will=self._message("will"),
            birth=self._message("birth"),
            close=self._message("close"),
            session_expiry=cfg.sessionExpiry if self.protocol == 5 else None,
            reconnect_min=cfg.reconnectPeriod / 1000,
            reconnect_max=max(cfg.reconnectPeriod, cfg.reconnectMaxPeriod) / 1000,
        )

    async def start(self) -> None:
        self.connection = mqtt.pool_of(self.rt.services).acquire(self.endpoint())
        self.connection.add_listener(self, self._on_state)

    def _on_state(self, state: State, detail: str) -> None:
        if state == "connected":
            self.status("green", "dot", "connected")
        elif state == "unavailable" and self.connection is not None:
            self.status("red", "ring", mqtt.status_text(self.connection))

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.remove_listener(self)
            await mqtt.pool_of(self.rt.services).release(conn)


def broker_of(node: Node, broker_id: str) -> MqttBrokerNode:
    """The running ``mqtt-broker`` a node names, or ``NeedsUserFix``."""
    found = node.rt.config_node(broker_id)
    if not isinstance(found, MqttBrokerNode):
        raise NeedsUserFix(
            f"no mqtt-broker node {broker_id!r}" if broker_id else "no mqtt-broker configured"
        )
    if found.connection is None:
        raise NeedsUserFix(f"mqtt-broker {broker_id!r} is not running")
    return found
