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
on first use with ``cryptography`` and kept in ``pki`` (``<data dir>/certificates/opcua``).
asyncua is imported inside functions: the engine imports every node module at startup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runner.connections.base import SharedConnection
from edge_runner.connections.opcua.certificates import (
    APPLICATION_NAME,
    application_uri,
    client_certificate,
)
from edge_runner.connections.opcua.values import (
    AuthType,
    DeadbandType,
    SecurityMode,
    SecurityPolicy,
    classify,
    classify_status,
    data_value_fields,
    parse_node_id,
    status_name,
    ua_module,
)
from edge_runner.contract import Msg, NeedsUserFix, NodeError, RetryLater

log = logging.getLogger("edge_runner.connections.opcua")


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
    # The runner's own certificate directory (RunnerPaths.opcua_pki); secured channels and
    # certificate logins without a user certificate need it.
    pki: Path | None = None
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

        ua = ua_module()

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
            if s.pki is None:
                raise NeedsUserFix("no certificate directory: the runner has no data directory")
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
        ua = ua_module()

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
        ua = ua_module()

        nid = parse_node_id(node_id)

        async def call(client: Any) -> None:
            await client.get_node(nid).write_attribute(ua.AttributeIds.Value, ua.DataValue(variant))

        await self._request("write", call)

    async def browse(self, node_id: str) -> list[Msg]:
        """Children of a node: node id, browse name, display name, node class and, for
        variables, the data type name."""
        ua = ua_module()

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
                    async with asyncio.timeout(self.settings.timeout):
                        await _unmonitor(sub, item, last=not group.items)
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
        ua = ua_module()

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


async def _unmonitor(sub: Any, item: MonitoredItem, last: bool) -> None:
    """Delete the subscription with its last item, else just the item."""
    if sub is None:
        return
    if last:
        await sub.delete()
    elif item.server_handle is not None:
        await sub.unsubscribe(item.server_handle)


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
    ua = ua_module()

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
