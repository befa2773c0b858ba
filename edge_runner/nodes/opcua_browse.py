"""``opcua-browse``: list the children of an OPC-UA node."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.contract import Category, Msg, NodeConfig, NodeSpec, register
from edge_runner.nodes._opcua import NodeIdConfig, SessionNode
from edge_runner.nodes.opcua_endpoint import live

OBJECTS_FOLDER = "i=85"


class Config(NodeIdConfig):
    pass  # no docstring: pydantic would publish it in the catalog schema


SPEC = NodeSpec(
    type="opcua-browse",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=1,
    label="opcua browse",
    color="#3fadb5",
    output_labels=("children",),
    help="""Lists the children of an OPC-UA node when a message arrives.

### Inputs
- **topic** *string*: the node to browse when the node has none; without either, the
  server's Objects folder (`i=85`).

### Outputs
- **payload** *array*: one entry per child (hierarchical references, forward):
  `{nodeId, browseName, displayName, nodeClass, dataType}`. *nodeClass* is `Object`,
  `Variable`, `Method`, ...; *dataType* is the type name for variables (`Double`,
  `Int32`, or the type's node id for custom types) and `null` otherwise.
- **topic** *string*: the browsed node id.

### Details
Use it to find the node ids to give `opcua-read`, `opcua-write` and `opcua-subscribe`: browse
`i=85`, then browse the `nodeId` of the object you want. An unknown node id raises an error for
`catch` nodes.
""",
)


@register
class OpcUaBrowse(SessionNode[Config]):
    """Browses on the endpoint's shared session."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    async def on_message(self, msg: Msg) -> None:
        connection = live(self.connection)
        topic = msg.get("topic")
        node_id = self.cfg.nodeId or (
            topic.strip() if isinstance(topic, str) and topic.strip() else OBJECTS_FOLDER
        )
        msg["payload"] = await connection.browse(node_id)
        msg["topic"] = node_id
        self.send(msg)
