"""``websocket in``: send what arrives on a websocket listener or client connection."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, NodeConfig, NodeSpec, register
from edge_runner.nodes._websocket import EndpointUser, UserConfig


class Config(UserConfig):
    pass


SPEC = NodeSpec(
    type="websocket in",
    version=1,
    category=Category.NETWORK,
    inputs=0,
    outputs=1,
    label="websocket in",
    color="#d7d7a0",
    icon="white-globe.svg",
    help="""Sends a message for everything received on a websocket.

### Outputs
* `payload`: a text frame as a string, a binary frame as bytes; with the endpoint's
  **wholemsg** the received JSON object is the message itself.
* `_session`: `{type: "websocket", id}` naming the connection, for a `websocket out` to
  answer it.

### Details
**server** names a `websocket-listener` (a path on the runner's port), **client** a
`websocket-client` (a connection to a URL); `client` wins when both are set. The status shows
`connected N` (listener: N clients), `disconnected` or `error`. Without a usable endpoint the
node fails to start with "Missing server configuration".
""",
)


@register
class WebSocketInNode(EndpointUser):
    """Sends every websocket message its endpoint receives."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config
    INBOUND: ClassVar[bool] = True
