"""``websocket out``: send messages over a websocket listener or client connection."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Msg, NodeConfig, NodeSpec, register
from edge_runner.nodes._websocket import EndpointUser, UserConfig


class Config(UserConfig):
    pass


SPEC = NodeSpec(
    type="websocket out",
    version=1,
    category=Category.NETWORK,
    inputs=1,
    outputs=0,
    label="websocket out",
    color="#d7d7a0",
    icon="white-globe.svg",
    help="""Sends `msg.payload` (or, with the endpoint's **wholemsg**, the whole message as
JSON without `_session`) over a websocket.

### Inputs
* `payload`: bytes go as a binary frame; a string as text; an object or array as its JSON;
  anything else as its text. An empty string or a missing payload sends nothing.
* `_session`: a `{type: "websocket", id}` from a `websocket in` answers only that connection
  (nothing when it has closed); without it a listener sends to every connected client.

### Details
**server** names a `websocket-listener`, **client** a `websocket-client`. Sending on a
client connection that is down is a warning ("An error occurred while sending: ...").
""",
)


@register
class WebSocketOutNode(EndpointUser):
    """Sends each message over its websocket endpoint."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    async def on_message(self, msg: Msg) -> None:
        endpoint = self.endpoint
        if endpoint is None:
            return
        data = endpoint.outgoing(msg)
        if data is not None:
            await endpoint.deliver(msg, data)
