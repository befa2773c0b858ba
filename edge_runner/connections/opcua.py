"""OPC-UA: one asyncua client session per endpoint, shared by every node that uses it.

``OpcUaConnection`` (a ``SharedConnection``) connects with the endpoint's security policy and
identity, serves reads, writes and browses, and owns the subscriptions: one asyncua
subscription per publishing interval, holding the monitored items of every ``opcua-subscribe``
node with that interval. Monitored items are kept here, not in asyncua, so that after a lost
session (a server restart forgets every subscription) the connection re-creates them on the new
session by itself. asyncua's own auto-reconnect is off: the base supervisor owns the retries and
reports ``unavailable`` / ``connected`` once each way.

Failures are mapped once, in ``classify``: transport problems and busy servers are
``RetryLater``, rejected identities, certificates, policies and unknown node ids are
``NeedsUserFix``, anything else a server refuses for one request is ``NodeFailed``.

The runner's client certificate (for signed/encrypted channels and certificate logins) is made
on first use with ``cryptography`` and kept in ``<data dir>/opcua/pki``.
asyncua is imported inside functions: the engine imports every node module at startup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_runner.connections.base import SharedConnection
from edge_runner.contract import Msg, NeedsUserFix, NodeError, NodeFailed, RetryLater

log = logging.getLogger("edge_runner.connections.opcua")

DATA_DIR_ENV = "MANIFOLD_RUNNER_DATA_DIR"
APPLICATION_NAME = "Manifold edge runner"
CERT_DAYS = 5 * 365

SecurityPolicy = Literal["None", "Basic256Sha256"]
SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
AuthType = Literal["anonymous", "username", "certificate"]
DeadbandType = Literal["none", "absolute", "percent"]

# "ns=2;s=Plant.Temperature", "i=85", "nsu=urn:x;s=a", "g=<uuid>", "b=<base64>"
NODE_ID = re.compile(
    r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]+)$", re.DOTALL
)

# Status codes by what they mean for the caller (OPC 10000-4 7.39 / 10000-6 A.2).
RETRY_CODES = frozenset(
    {
        "BadTimeout",
        "BadCommunicationError",
        "BadConnectionClosed",
        "BadServerNotConnected",
        "BadSessionClosed",
        "BadSessionIdInvalid",
        "BadSessionNotActivated",
        "BadSecureChannelClosed",
        "BadSecureChannelIdInvalid",
        "BadServerHalted",
        "BadShutdown",
        "BadTooManySessions",
        "BadTooManyOperations",
        "BadResourceUnavailable",
        "BadNoCommunication",
        "BadWaitingForInitialData",
        "BadTcpServerTooBusy",
        "BadMaxConnectionsReached",
        "BadRequestTimeout",
        "BadNotConnected",
        "BadDisconnect",
        "BadOutOfService",
        "BadServerTooBusy",
        "BadTooManyPublishRequests",
        "BadNoSubscription",
    }
)
USER_FIX_CODES = frozenset(
    {
        "BadUserAccessDenied",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
        "BadSecurityPolicyRejected",
        "BadSecurityChecksFailed",
        "BadSecurityModeRejected",
        "BadNodeIdUnknown",
        "BadNodeIdInvalid",
        "BadNotWritable",
        "BadNotReadable",
        "BadAttributeIdInvalid",
        "BadTcpEndpointUrlInvalid",
        "BadApplicationSignatureInvalid",
        "BadUserSignatureInvalid",
        "BadNotSupported",
        "BadMonitoredItemFilterUnsupported",
        "BadDeadbandFilterInvalid",
        "BadFilterNotAllowed",
        "BadNoDeleteRights",
    }
)


def _ua() -> Any:
    """asyncua's ``ua`` namespace, imported on first use (its stubs are partial: typed Any)."""
    from asyncua import ua

    return ua


def status_name(code: Any) -> str:
    """``"Good"`` / ``"BadNodeIdUnknown"`` for a StatusCode, its int value or an asyncua error."""
    ua = _ua()

    value = getattr(code, "value", code)
    if not isinstance(value, int):
        value = getattr(code, "code", 0)
    try:
        name: str = ua.StatusCode(value).name
    except Exception:  # unknown code: keep the number visible
        name = f"0x{value:08X}"
    return name


def classify_status(name: str, action: str = "") -> NodeError:
    """The failure class of a bad status code, by its name (``"BadNodeIdUnknown"``)."""
    text = f"{action}: {name}" if action else name
    if name in RETRY_CODES:
        return RetryLater(text)
    if name in USER_FIX_CODES or name.startswith(("BadCertificate", "BadUser", "BadIdentity")):
        return NeedsUserFix(text)
    return NodeFailed(text)


def classify(exc: BaseException, action: str = "") -> NodeError:
    """Map anything asyncua (or the network) raises to one of the contract's failure classes."""
    ua = _ua()

    if isinstance(exc, NodeError):
        return exc
    prefix = f"{action}: " if action else ""
    if isinstance(exc, ua.UaStatusCodeError):
        return classify_status(status_name(exc.code), action)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError, EOFError)):
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in detail:
            detail = "connection refused"
        return RetryLater(f"{prefix}{detail}")
    if isinstance(exc, ua.UaError) and "No matching endpoints" in str(exc):
        return NeedsUserFix(
            f"{prefix}the server offers no endpoint with this security policy and mode"
        )
    if isinstance(exc, (ValueError, TypeError, ua.UaError)):
        return NeedsUserFix(f"{prefix}{exc}")
    return RetryLater(f"{prefix}{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- certificates


def data_dir(engine: Any = None) -> Path:
    """Where the runner keeps its files: ``$MANIFOLD_RUNNER_DATA_DIR``, else the engine's
    data/user directory when it exposes one, else ``~/.manifold-runner``."""
    configured = (
        os.environ.get(DATA_DIR_ENV)
        or getattr(engine, "data_dir", None)
        or getattr(engine, "userdir", None)
    )
    return Path(configured) if configured else Path.home() / ".manifold-runner"


def application_uri() -> str:
    """The client's ApplicationUri; its certificate carries it as a URI SAN (asyncua checks)."""
    return f"urn:manifold:edge-runner:{socket.gethostname()}"


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def client_certificate(pki: Path, uri: str | None = None) -> tuple[Path, Path]:
    """The runner's self-signed client certificate (DER) and key (PEM), made once and reused
    while valid for ``uri``; regenerated when missing, expired or for another URI."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    uri = uri or application_uri()
    cert_path, key_path = pki / "client-cert.der", pki / "client-key.pem"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_der_x509_certificate(cert_path.read_bytes())
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if uri in sans.get_values_for_type(
                x509.UniformResourceIdentifier
            ) and cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
                return cert_path, key_path
        except (ValueError, x509.ExtensionNotFound):
            log.warning("OPC-UA client certificate %s is unreadable; making a new one", cert_path)
    pki.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, APPLICATION_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Manifold"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.DER), 0o644)
    log.info("made OPC-UA client certificate %s for %s", cert_path, uri)
    return cert_path, key_path


# --------------------------------------------------------------------------- values


def json_safe(value: Any) -> Any:
    """An asyncua value as message data: datetimes as ISO 8601 text, node ids as their string
    form, localized text as its text, structures as dicts; bytes stay bytes."""
    ua = _ua()

    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, ua.Variant):
        return json_safe(value.Value)
    if isinstance(value, (ua.NodeId, ua.ExpandedNodeId)):
        return value.to_string()
    if isinstance(value, ua.QualifiedName):
        return value.to_string()
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.StatusCode):
        return status_name(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytearray):
        return bytes(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def data_value_fields(dv: Any) -> Msg:
    """``value``, ``statusCode``, ``sourceTimestamp``, ``serverTimestamp`` of a DataValue."""
    return {
        "value": json_safe(dv.Value.Value) if dv.Value is not None else None,
        "statusCode": status_name(dv.StatusCode) if dv.StatusCode is not None else "Good",
        "sourceTimestamp": json_safe(dv.SourceTimestamp),
        "serverTimestamp": json_safe(dv.ServerTimestamp),
        "dataType": dv.Value.VariantType.name if dv.Value is not None else None,
    }


def parse_node_id(text: Any, source: str = "node id") -> Any:
    """A ``ua.NodeId`` from its string form; NodeFailed naming ``source`` when it is not one."""
    ua = _ua()

    if not isinstance(text, str) or not NODE_ID.match(text.strip()):
        raise NodeFailed(f"invalid {source} {text!r} (expected e.g. 'ns=2;s=Tag' or 'i=2258')")
    try:
        return ua.NodeId.from_string(text.strip())
    except Exception as exc:
        raise NodeFailed(f"invalid {source} {text!r}: {exc}") from None


# --------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class EndpointSettings:
    """How to reach and log into one OPC-UA server."""

    url: str
    security_policy: SecurityPolicy = "None"
    security_mode: SecurityMode = "None"
    auth: AuthType = "anonymous"
    username: str = ""
    password: str = field(default="", repr=False)
    user_certificate: Path | None = None  # certificate login; None: the runner's certificate
    user_private_key: Path | None = None
    pki: Path = field(default_factory=lambda: data_dir() / "opcua" / "pki")
    timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 10.0
    watchdog_interval: float = 1.0


@dataclass(eq=False)
class MonitoredItem:
    """One node watched for data changes; ``on_change`` gets the DataValue fields, ``on_error``
    a failure of this item (e.g. an unknown node id) after each (re)creation."""

    node_id: str
    sampling_interval: float
    queue_size: int
    deadband_type: DeadbandType
    deadband_value: float
    on_change: Callable[[Msg], None]
    on_error: Callable[[NodeError], None]
    server_handle: int | None = None


@dataclass(eq=False)
class _Group:
    """Every monitored item with one publishing interval: one asyncua subscription."""

    interval: float
    items: dict[int, MonitoredItem] = field(default_factory=dict)  # by client handle
    subscription: Any = None


class _Handler:
    """asyncua callback handler routing notifications to the items of one group."""

    def __init__(self, group: _Group) -> None:
        self.group = group

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        item = self.group.items.get(data.monitored_item.ClientHandle)
        if item is None:
            return
        fields = data_value_fields(data.monitored_item.Value)
        try:
            item.on_change(fields)
        except Exception:  # a node's callback must not stop the publish loop
            log.exception("OPC-UA data change handler failed for %s", item.node_id)

    def status_change_notification(self, status: Any) -> None:
        log.debug("OPC-UA subscription status change: %s", status)


class OpcUaConnection(SharedConnection):
    """One asyncua session to one endpoint (see the module docstring)."""

    kind = "OPC-UA"

    def __init__(self, key: str, settings: EndpointSettings) -> None:
        super().__init__(key, settings.url, settings.reconnect_min, settings.reconnect_max)
        self.settings = settings
        self.client: Any = None
        self._groups: dict[float, _Group] = {}
        self._handles = 0
        self._lock = asyncio.Lock()
        self._type_cache: dict[str, Any] = {}
        self.sessions = 0  # sessions opened so far (tests, metrics)

    # ------------------------------------------------------------------ supervisor hooks
    async def _connect(self) -> None:
        from asyncua.client.client import Client
        from asyncua.crypto import security_policies

        ua = _ua()

        s = self.settings
        client = Client(s.url, timeout=s.timeout, watchdog_intervall=s.watchdog_interval)
        client.application_uri = application_uri()
        client.name = client.description = APPLICATION_NAME
        client.session_timeout = 60_000
        need_cert = s.security_policy != "None" or (
            s.auth == "certificate" and s.user_certificate is None
        )
        cert = key = None
        if need_cert:
            cert, key = await asyncio.to_thread(client_certificate, s.pki, client.application_uri)
        async with asyncio.timeout(s.timeout * 3):
            if s.security_policy != "None":
                await client.set_security(
                    security_policies.SecurityPolicyBasic256Sha256,
                    str(cert),
                    str(key),
                    mode=getattr(ua.MessageSecurityMode, s.security_mode),
                )
            if s.auth == "username":
                client.set_user(s.username)
                client.set_password(s.password)
            elif s.auth == "certificate":
                await client.load_client_certificate(str(s.user_certificate or cert))
                await client.load_private_key(Path(s.user_private_key or key))  # type: ignore[arg-type]  # set above when no user key
            self._lost.clear()

            async def lost(exc: Exception) -> None:
                if self.client is client:
                    self.mark_lost(f"connection lost: {exc}")

            client.connection_lost_callback = lost
            await client.connect()
        self.client = client
        self.sessions += 1
        self._type_cache.clear()
        async with self._lock:
            for group in self._groups.values():
                group.subscription = None
                await self._create_group(group)

    async def _serve(self) -> None:
        from asyncua.client.ua_client import UaClientState

        client = self.client
        await self._wait_lost(0.25, lambda: client.state is UaClientState.CONNECTED)

    async def _disconnect(self) -> None:
        client, self.client = self.client, None
        for group in self._groups.values():
            group.subscription = None
            for item in group.items.values():
                item.server_handle = None
        if client is not None:
            async with asyncio.timeout(self.settings.timeout):
                await client.disconnect()

    def classify(self, exc: BaseException) -> NodeError:
        return classify(exc)

    # ------------------------------------------------------------------ requests
    def _live_client(self) -> Any:
        if self.client is None or not self.connected:
            raise RetryLater(f"not connected to {self.label} ({self.detail or self.state})")
        return self.client

    async def _request(self, action: str, call: Callable[[Any], Any]) -> Any:
        """Run one request on the live session; failures come back classified."""
        client = self._live_client()
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await call(client)
        except asyncio.CancelledError:
            raise
        except NodeError:
            raise
        except Exception as exc:
            failure = classify(exc, action)
            if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
                self.mark_lost(str(failure))
            raise failure from None

    async def read(self, node_ids: list[str]) -> list[Msg]:
        """Values of ``node_ids`` in one Read request: one dict per node (see
        ``data_value_fields``), bad statuses included."""
        ua = _ua()

        ids = [parse_node_id(n) for n in node_ids]

        async def call(client: Any) -> Any:
            return await client.read_attributes(
                [client.get_node(i) for i in ids], ua.AttributeIds.Value
            )

        values = await self._request("read", call)
        return [
            {"nodeId": n, **data_value_fields(dv)} for n, dv in zip(node_ids, values, strict=True)
        ]

    async def variant_type(self, node_id: str) -> Any:
        """The VariantType of a variable's DataType (cached per session)."""
        found = self._type_cache.get(node_id)
        if found is None:
            nid = parse_node_id(node_id)
            found = await self._request(
                "read data type", lambda c: c.get_node(nid).read_data_type_as_variant_type()
            )
            self._type_cache[node_id] = found
        return found

    async def write(self, node_id: str, variant: Any) -> None:
        """Write one value (a ``ua.Variant``); raises the classified failure when refused."""
        ua = _ua()

        nid = parse_node_id(node_id)

        async def call(client: Any) -> None:
            await client.get_node(nid).write_attribute(ua.AttributeIds.Value, ua.DataValue(variant))

        await self._request("write", call)

    async def browse(self, node_id: str) -> list[Msg]:
        """Children of a node: node id, browse name, display name, node class and, for
        variables, the data type name."""
        ua = _ua()

        nid = parse_node_id(node_id)

        async def call(client: Any) -> list[Msg]:
            # asyncua's server answers an unknown node's browse with no children: ask first
            (exists,) = await client.read_attributes(
                [client.get_node(nid)], ua.AttributeIds.NodeClass
            )
            if not exists.StatusCode.is_good():
                raise classify_status(status_name(exists.StatusCode), f"browse {node_id}")
            refs = await client.get_node(nid).get_children_descriptions()
            out: list[Msg] = []
            variables = []
            for ref in refs:
                entry: Msg = {
                    "nodeId": ref.NodeId.to_string(),
                    "browseName": ref.BrowseName.to_string(),
                    "displayName": ref.DisplayName.Text,
                    "nodeClass": ref.NodeClass.name,
                    "dataType": None,
                }
                out.append(entry)
                if ref.NodeClass == ua.NodeClass.Variable:
                    variables.append((entry, client.get_node(ref.NodeId)))
            if variables:
                types = await client.read_attributes(
                    [n for _, n in variables], ua.AttributeIds.DataType
                )
                for (entry, _), dv in zip(variables, types, strict=True):
                    type_id = dv.Value.Value if dv.Value is not None else None
                    entry["dataType"] = _type_name(type_id)
            return out

        result: list[Msg] = await self._request("browse", call)
        return result

    # ------------------------------------------------------------------ subscriptions
    async def add_item(self, interval: float, item: MonitoredItem) -> None:
        """Watch ``item`` on the subscription for ``interval`` ms (made on demand). Kept across
        reconnects; while disconnected it is created on the next session."""
        async with self._lock:
            group = self._groups.get(interval)
            if group is None:
                group = self._groups[interval] = _Group(interval)
            self._handles += 1
            group.items[self._handles] = item
            if self.client is not None and self.connected:
                try:
                    if group.subscription is None:
                        await self._create_group(group)
                    else:
                        await self._create_items(group, [(self._handles, item)])
                except NodeError as exc:
                    item.on_error(exc)

    async def remove_item(self, item: MonitoredItem) -> None:
        """Stop watching ``item``; the subscription goes when its last item goes."""
        async with self._lock:
            for interval, group in list(self._groups.items()):
                handle = next((h for h, i in group.items.items() if i is item), None)
                if handle is None:
                    continue
                del group.items[handle]
                sub = group.subscription
                try:
                    if sub is not None and not group.items:
                        await sub.delete()
                    elif sub is not None and item.server_handle is not None:
                        await sub.unsubscribe(item.server_handle)
                except Exception as exc:  # the session may be gone; nothing to undo then
                    log.debug("OPC-UA unsubscribe failed: %s", exc)
                if not group.items:
                    del self._groups[interval]

    async def _create_group(self, group: _Group) -> None:
        client = self.client
        try:
            group.subscription = await client.create_subscription(group.interval, _Handler(group))
        except Exception as exc:
            failure = classify(exc, "create subscription")
            for item in group.items.values():
                item.on_error(failure)
            return
        await self._create_items(group, list(group.items.items()))

    async def _create_items(self, group: _Group, items: list[tuple[int, MonitoredItem]]) -> None:
        ua = _ua()

        requests = []
        made: list[tuple[int, MonitoredItem]] = []
        for handle, item in items:
            try:
                nid = parse_node_id(item.node_id)
            except NodeError as exc:
                item.on_error(exc)
                continue
            requests.append(_item_request(ua, nid, handle, item, group.interval))
            made.append((handle, item))
        if not requests:
            return
        try:
            results = await group.subscription.create_monitored_items(requests)
        except Exception as exc:
            failure = classify(exc, "create monitored items")
            for _, item in made:
                item.on_error(failure)
            return
        for (_, item), result in zip(made, results, strict=True):
            if isinstance(result, ua.StatusCode):
                item.server_handle = None
                item.on_error(
                    classify(ua.UaStatusCodeError(result.value), f"monitor {item.node_id}")
                )
            else:
                item.server_handle = result

    async def close(self) -> None:
        await super().close()
        self._groups.clear()


def _item_request(ua: Any, nid: Any, handle: int, item: MonitoredItem, interval: float) -> Any:
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    # -1 asks the server to sample at the publishing interval (OPC 10000-4 7.21)
    params.SamplingInterval = item.sampling_interval if item.sampling_interval >= 0 else interval
    params.QueueSize = item.queue_size
    params.DiscardOldest = True
    if item.deadband_type != "none":
        flt = ua.DataChangeFilter()
        flt.Trigger = ua.DataChangeTrigger.StatusValue
        flt.DeadbandType = (
            ua.DeadbandType.Absolute
            if item.deadband_type == "absolute"
            else ua.DeadbandType.Percent
        )
        flt.DeadbandValue = item.deadband_value
        params.Filter = flt
    read = ua.ReadValueId()
    read.NodeId = nid
    read.AttributeId = ua.AttributeIds.Value
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = read
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request


def _type_name(type_id: Any) -> str | None:
    """``"Double"`` for a standard DataType node id, else the id's string form."""
    ua = _ua()

    if type_id is None:
        return None
    if (
        isinstance(type_id, ua.NodeId)
        and type_id.NamespaceIndex == 0
        and isinstance(type_id.Identifier, int)
    ):
        name: str | None = ua.ObjectIdNames.get(type_id.Identifier)
        if name:
            return name
    return str(type_id.to_string()) if isinstance(type_id, ua.NodeId) else str(type_id)
