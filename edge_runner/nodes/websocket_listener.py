"""``websocket-listener``: the config node for a websocket path served on the runner's port."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, NodeConfig, NodeSpec, register
from edge_runner.nodes._websocket import EndpointConfig, WebSocketEndpoint


class Config(EndpointConfig):
    pass


SPEC = NodeSpec(
    type="websocket-listener",
    version=1,
    category=Category.CONFIG,
    inputs=0,
    outputs=0,
    is_config=True,
    label="websocket listener",
    help="""A websocket endpoint on the runner's own HTTP port, used by `websocket in` and
`websocket out` nodes.

### Properties
* **path**: the path clients connect to (`/ws/data`; a missing leading `/` is added). Two
  listeners cannot share a path ("Cannot have two WebSocket listeners on the same path").
  The runner's own paths (`/flows`, `/comms`) are served by the runner, never by a listener,
  like Node-RED's `/comms` and its editor paths.
* **wholemsg**: `"false"` sends and receives `msg.payload`; `"true"` the whole message as
  JSON (a received text that is not a JSON object becomes `msg.payload`).

### Details
Every message received carries `msg._session` (`{type: "websocket", id}`) naming the
connection; a `websocket out` sending a message with it answers only that connection, without
it every connected client gets the message. Like Node-RED's listener paths (and `http in`
routes) these are user routes: the Admin API's guard does not apply to them.
""",
)


@register
class WebSocketListenerNode(WebSocketEndpoint):
    """Serves websocket connections on a path of the runner's port."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config
