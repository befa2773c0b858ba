"""OPC-UA on the runner: one shared asyncua session per endpoint (``session``), the failure
classification and value conversions (``values``) and the runner's client certificate
(``certificates``)."""

from edge_runner.connections.opcua.certificates import (
    APPLICATION_NAME,
    application_uri,
    client_certificate,
)
from edge_runner.connections.opcua.session import (
    EndpointSettings,
    MonitoredItem,
    OpcUaConnection,
)
from edge_runner.connections.opcua.values import (
    NODE_ID,
    AuthType,
    DeadbandType,
    SecurityMode,
    SecurityPolicy,
    classify,
    classify_status,
    data_value_fields,
    json_safe,
    parse_node_id,
    status_name,
)

__all__ = [
    "APPLICATION_NAME",
    "NODE_ID",
    "AuthType",
    "DeadbandType",
    "EndpointSettings",
    "MonitoredItem",
    "OpcUaConnection",
    "SecurityMode",
    "SecurityPolicy",
    "application_uri",
    "classify",
    "classify_status",
    "client_certificate",
    "data_value_fields",
    "json_safe",
    "parse_node_id",
    "status_name",
]
