"""``websocket-client``: the config node for a websocket connection to a ws:// or wss:// URL."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import field_validator

from edge_runner.contract import Category, NodeConfig, NodeSpec, register
from edge_runner.nodes._netio import tls_client_context
from edge_runner.nodes._websocket import EndpointConfig, WebSocketEndpoint


class Config(EndpointConfig):
    tls: str = ""
    hb: float = 0
    subprotocol: str = ""
    headers: list[dict[str, Any]] = []

    @field_validator("hb", mode="before")
    @classmethod
    def _heartbeat(cls, value: Any) -> Any:
        if value in ("", None):
            return 0
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"hb (heartbeat seconds) must be a number, got {value!r}") from None

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        return [] if value in ("", None) else value


SPEC = NodeSpec(
    type="websocket-client",
    version=1,
    category=Category.CONFIG,
    inputs=0,
    outputs=0,
    is_config=True,
    label="websocket client",
    help="""A websocket connection to a server, used by `websocket in` and `websocket out`.

### Properties
* **path**: the URL, `ws://host:port/path` or `wss://...` (with **tls**, a `tls-config`
  node, for the certificates to trust or present).
* **wholemsg**: `"false"` sends and receives `msg.payload`; `"true"` the whole message as
  JSON.
* **subprotocol**: comma-separated subprotocols to ask for.
* **hb**: send a ping every so many seconds and drop the connection when no pong comes back
  (blank or `0`: no heartbeat).
* **headers**: extra upgrade request headers, Node-RED's list of `{keyType, keyValue,
  valueType, valueValue}` (`other` takes the typed name or value, `env` the value of an
  environment variable).

### Details
The connection opens when the first `websocket in`/`out` using it starts. The status of
those nodes follows it: `connected` (with Node-RED's trailing space), red `disconnected`
when the server closes it, red `error` when a connection attempt fails. A lost connection is
retried after a random pause that grows with every failure up to 3 s (Node-RED retries every
3 s).
""",
)


@register
class WebSocketClientNode(WebSocketEndpoint):
    """Keeps a websocket connection to a server open."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg: Config = config  # type: ignore[assignment]  # the engine parsed our Config
        self.subprotocols = [p.strip() for p in self.cfg.subprotocol.split(",") if p.strip()]

    def client_options(self) -> dict[str, Any]:
        options = super().client_options()
        options["headers"] = self._headers()
        if self.cfg.hb > 0:
            options["heartbeat"] = self.cfg.hb
        context = tls_client_context(self, self.cfg.tls)
        if context is not None:
            options["ssl"] = context
        return options

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for header in self.cfg.headers:
            key_type = str(header.get("keyType") or "")
            name = str(header.get("keyValue") or "") if key_type == "other" else key_type
            value_type = str(header.get("valueType") or "")
            raw = header.get("valueValue")
            if value_type == "other":
                value = raw
            elif value_type == "env":
                value = self.rt.evaluate(raw, "env")
            else:
                value = value_type
            if name and value:
                headers[name] = str(value)
        return headers
