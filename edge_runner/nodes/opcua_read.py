"""``opcua-read``: read the value of one or more OPC-UA variables when a message arrives."""

from __future__ import annotations

from typing import ClassVar

from edge_runner.connections.opcua import classify_status
from edge_runner.contract import (
    Category,
    Msg,
    NodeConfig,
    NodeFailed,
    NodeSpec,
    register,
)
from edge_runner.nodes._opcua import NodeIdConfig, SessionNode
from edge_runner.nodes._opcua import check_node_id as check_node_id  # re-exported: public name
from edge_runner.nodes.opcua_endpoint import live


def node_ids_from(msg: Msg, configured: str) -> tuple[list[str], bool]:
    """The node ids to use: the configured one, else ``msg.topic``, else ``msg.payload``
    (a string or a list of strings). Returns the ids and whether a list was given."""
    if configured:
        return [configured], False
    topic = msg.get("topic")
    if isinstance(topic, str) and topic.strip():
        return [topic.strip()], False
    payload = msg.get("payload")
    if isinstance(payload, str) and payload.strip():
        return [payload.strip()], False
    if isinstance(payload, list) and payload and all(isinstance(p, str) for p in payload):
        return [p.strip() for p in payload], True
    raise NodeFailed(
        "no node id: set one on the node, or send it as msg.topic or msg.payload "
        "(a string or a list of strings)"
    )


class Config(NodeIdConfig):
    pass  # no docstring: pydantic would publish it in the catalog schema


SPEC = NodeSpec(
    type="opcua-read",
    version=1,
    category=Category.INDUSTRIAL,
    inputs=1,
    outputs=1,
    label="opcua read",
    color="#3fadb5",
    output_labels=("value",),
    help="""Reads OPC-UA variables when a message arrives.

### Inputs
- **topic** *string*: the node id to read when the node has none (`ns=2;s=Line1.Speed`).
- **payload** *string | array*: the node id, or a list of node ids, when neither the node
  nor `msg.topic` names one.

### Outputs
For one node id:
- **payload**: the value (numbers, text, booleans; DateTime as ISO 8601 text; ByteString as
  bytes; arrays as lists).
- **topic** *string*: the node id.
- **statusCode** *string*: `Good`, or the OPC-UA status name.
- **sourceTimestamp**, **serverTimestamp** *string*: ISO 8601 times from the server.
- **dataType** *string*: the value's OPC-UA type (`Double`, `Int32`, ...).

For a list of node ids, **payload** is a list of
`{nodeId, value, statusCode, sourceTimestamp, serverTimestamp, dataType}`, one per id, bad
statuses included.

### Details
All ids of a message are read in one Read request on the endpoint's shared session. A single
read that the server answers with a bad status (an unknown node id, no access) raises an error
that `catch` nodes receive; while the endpoint is unavailable every read fails fast with
"not connected" rather than waiting.
""",
)


@register
class OpcUaRead(SessionNode[Config]):
    """Reads variables on the endpoint's shared session."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    async def on_message(self, msg: Msg) -> None:
        connection = live(self.connection)
        ids, many = node_ids_from(msg, self.cfg.nodeId)
        results = await connection.read(ids)
        if many:
            msg["payload"] = results
            self.send(msg)
            return
        (result,) = results
        if result["statusCode"] != "Good" and not result["statusCode"].startswith("Uncertain"):
            raise classify_status(result["statusCode"], f"read {ids[0]}")
        msg["topic"] = ids[0]
        msg["payload"] = result["value"]
        for key in ("statusCode", "sourceTimestamp", "serverTimestamp", "dataType"):
            msg[key] = result[key]
        self.send(msg)
