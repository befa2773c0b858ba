"""``opcua-endpoint``: the config node naming one OPC-UA server and how to log into it.

Every ``opcua-*`` node pointing at the same endpoint shares its one session
(``edge_runner.connections.opcua``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator, model_validator

from edge_runner.connections.base import State
from edge_runner.connections.opcua import (
    AuthType,
    EndpointSettings,
    OpcUaConnection,
    SecurityMode,
    SecurityPolicy,
)
from edge_runner.contract import (
    Category,
    NeedsUserFix,
    Node,
    NodeConfig,
    NodeSpec,
    RetryLater,
    register,
)

# node-red-contrib-opcua's OpcUa-Endpoint field names, accepted by ``migrate``
_CONTRIB_POLICIES = {"None": "None", "Basic256Sha256": "Basic256Sha256"}


class Config(NodeConfig):
    endpoint: str = ""
    securityPolicy: SecurityPolicy = "None"  # noqa: N815  # flows.json field names
    securityMode: SecurityMode = "None"  # noqa: N815
    authType: AuthType = "anonymous"  # noqa: N815
    userCertificate: str = ""  # noqa: N815  # file in the data dir; blank: the runner's own
    userPrivateKey: str = ""  # noqa: N815
    timeout: float = Field(default=5.0, gt=0, le=300)  # seconds per request
    reconnectMaxDelay: float = Field(default=10.0, ge=0.1, le=600)  # noqa: N815  # seconds

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp_url(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("endpoint URL is required, e.g. opc.tcp://plc.local:4840")
        if not text.lower().startswith("opc.tcp://") or len(text) <= len("opc.tcp://"):
            raise ValueError(f"endpoint must be an opc.tcp:// URL, not {value!r}")
        return text

    @model_validator(mode="after")
    def _policy_and_mode_agree(self) -> Config:
        if (self.securityPolicy == "None") != (self.securityMode == "None"):
            raise ValueError(
                f"security policy {self.securityPolicy} cannot be used with mode "
                f"{self.securityMode}: use None/None, or Basic256Sha256 with Sign or "
                "SignAndEncrypt"
            )
        if bool(self.userCertificate) != bool(self.userPrivateKey):
            raise ValueError("userCertificate and userPrivateKey go together")
        return self


SPEC = NodeSpec(
    type="opcua-endpoint",
    version=1,
    category=Category.CONFIG,
    inputs=0,
    outputs=0,
    label="OPC-UA endpoint",
    color="#3fadb5",
    is_config=True,
    credentials=("user", "password"),
    help="""An OPC-UA server and how to log into it: one session shared by every OPC-UA node
that uses this endpoint.

### Properties
- **endpoint**: the server's URL, `opc.tcp://host:port/path`.
- **securityPolicy** / **securityMode**: `None`/`None`, or `Basic256Sha256` with `Sign` or
  `SignAndEncrypt`.
- **authType**: `anonymous`, `username` (the *user* and *password* credentials) or
  `certificate`.
- **userCertificate** / **userPrivateKey**: files (DER or PEM) in the runner's certificate
  directory (`<data dir>/certificates/`) for certificate logins; blank uses the runner's own
  client certificate.
- **timeout**: seconds per request. **reconnectMaxDelay**: longest pause between reconnect
  attempts (seconds; each pause is random up to a bound that starts at 0.5 s and doubles).

### Details
For signed or encrypted channels the runner makes a self-signed client certificate on first use
(RSA 2048, SHA-256, its ApplicationUri `urn:manifold:edge-runner:<hostname>` as a subject
alternative name) and keeps it in `<data dir>/certificates/opcua/client-cert.der` (key
`client-key.pem`, readable only by the runner). Servers that check certificates must trust it
once; until then the connection is retried at the slow end.

When the server goes away every node using the endpoint turns red once ("unavailable"), the
runner reconnects with backoff, re-creates the subscriptions on the new session, and the nodes
turn green once again. Each transition is logged once.

Flows from node-red-contrib-opcua load too: `secpol`, `secmode`, `login`, `none`, `usercert`,
`usercertificate` and `userprivatekey` are read as the fields above.
""",
)


@register
class OpcUaEndpoint(Node):
    """Owns the endpoint's shared ``OpcUaConnection`` from start to stop."""

    SPEC: ClassVar[NodeSpec] = SPEC
    Config: ClassVar[type[NodeConfig]] = Config

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        super().__init__(runtime, config)
        self.cfg = cast(Config, config)
        self.connection: OpcUaConnection | None = None

    @staticmethod
    def migrate(fields: dict[str, Any]) -> dict[str, Any]:
        """Read node-red-contrib-opcua's field names."""
        out = dict(fields)
        if "secpol" in out:
            policy = str(out.pop("secpol") or "None")
            out.setdefault("securityPolicy", _CONTRIB_POLICIES.get(policy, policy))
        if "secmode" in out:
            out.setdefault("securityMode", str(out.pop("secmode") or "None"))
        login, usercert = out.pop("login", None), out.pop("usercert", None)
        out.pop("none", None)
        if "authType" not in out and (login or usercert):
            out["authType"] = "certificate" if usercert else "username"
        if "usercertificate" in out:
            out.setdefault("userCertificate", out.pop("usercertificate") or "")
        if "userprivatekey" in out:
            out.setdefault("userPrivateKey", out.pop("userprivatekey") or "")
        return out

    def settings(self) -> EndpointSettings:
        cfg = self.cfg
        paths = self.rt.paths
        base = paths.certificates
        creds = self.rt.credentials
        username, password = str(creds.get("user") or ""), str(creds.get("password") or "")
        if cfg.authType == "username" and not username:
            raise NeedsUserFix("username login needs the 'user' credential")
        cert = key = None
        if cfg.authType == "certificate" and cfg.userCertificate:
            cert, key = base / cfg.userCertificate, base / cfg.userPrivateKey
            for path in (cert, key):
                if not path.resolve().is_relative_to(base.resolve()):
                    raise NeedsUserFix(f"{path} is outside the runner's certificate directory")
                if not path.is_file():
                    raise NeedsUserFix(f"certificate file {path} does not exist")
        return EndpointSettings(
            url=cfg.endpoint,
            security_policy=cfg.securityPolicy,
            security_mode=cfg.securityMode,
            auth=cfg.authType,
            username=username,
            password=password,
            user_certificate=cert,
            user_private_key=key,
            pki=paths.ensure(paths.opcua_pki),
            timeout=cfg.timeout,
            reconnect_max=cfg.reconnectMaxDelay,
        )

    async def start(self) -> None:
        self.connection = OpcUaConnection(self.id, self.settings())
        self.connection.add_listener(self, self._on_state)
        self.connection.start()

    def _on_state(self, state: State, detail: str) -> None:
        show(self, state, detail)

    async def stop(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            await conn.close()


def show(node: Node, state: State, detail: str = "") -> None:
    """A node's badge for its endpoint's state; the reason shows while unavailable."""
    if state == "connected":
        node.status("green", "dot", "connected")
    elif state == "unavailable":
        node.status("red", "ring", f"unavailable: {detail}"[:80] if detail else "unavailable")
    elif state == "connecting":
        node.status("yellow", "ring", "connecting")
    else:
        node.status("grey", "ring", "closed")


def attach(
    node: Node, endpoint_id: str, listener: Callable[[State, str], None] | None = None
) -> OpcUaConnection:
    """The shared connection of ``endpoint_id`` for ``node``, whose badge then follows it
    (through ``listener`` when given). NeedsUserFix when the id names no running
    ``opcua-endpoint``."""
    endpoint = node.rt.config_node(endpoint_id) if endpoint_id else None
    if not isinstance(endpoint, OpcUaEndpoint):
        raise NeedsUserFix(
            f"no opcua-endpoint config node {endpoint_id!r}"
            if endpoint_id
            else "no OPC-UA endpoint selected"
        )
    if endpoint.connection is None:
        raise NeedsUserFix(f"OPC-UA endpoint {endpoint_id!r} did not start")
    conn = endpoint.connection
    conn.add_listener(node, listener or (lambda state, detail: show(node, state, detail)))
    return conn


def live(connection: OpcUaConnection | None) -> OpcUaConnection:
    """The node's connection while it runs (messages only arrive after a good start)."""
    if connection is None:
        raise RetryLater("the node is stopped")
    return connection
