"""Shared parts of the OPC-UA request nodes (``opcua-read``, ``opcua-write``, ``opcua-browse``).

Each names an ``opcua-endpoint`` config node and an optional node id, attaches to the
endpoint's shared session when started and detaches when stopped; that is stated once here.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from pydantic import field_validator

from edge_runner.connections.opcua import NODE_ID, OpcUaConnection
from edge_runner.contract import Node, NodeConfig
from edge_runner.nodes.opcua_endpoint import attach


def check_node_id(value: str) -> str:
    """Config validator: blank, or an OPC-UA node id in its string form."""
    text = value.strip()
    if text and not NODE_ID.match(text):
        raise ValueError(f"invalid node id {value!r} (expected e.g. 'ns=2;s=Tag' or 'i=2258')")
    return text


class NodeIdConfig(NodeConfig):
    """The endpoint and the (optional) node id every request node is configured with."""

    endpoint: str = ""
    nodeId: str = ""  # noqa: N815  # flows.json field name

    @field_validator("nodeId")
    @classmethod
    def _node_id(cls, value: str) -> str:
        return check_node_id(value)


ConfigT = TypeVar("ConfigT", bound=NodeIdConfig)


class SessionNode(Node, Generic[ConfigT]):
    """A node working on its endpoint's shared session: attached in ``start``, released in
    ``stop``; ``self.connection`` is ``None`` outside that span."""

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(ConfigT, config)
        self.connection: OpcUaConnection | None = None

    async def start(self) -> None:
        self.connection = attach(self, self.cfg.endpoint)

    async def stop(self) -> None:
        if self.connection is not None:
            self.connection.remove_listener(self)
            self.connection = None
