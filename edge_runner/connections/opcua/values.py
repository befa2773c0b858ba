"""OPC-UA values and failures: status names, the one failure classification, node ids, and
asyncua values turned into message data. asyncua is imported inside functions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import uuid
from typing import Any, Literal

from edge_runner.contract import Msg, NeedsUserFix, NodeError, NodeFailed, RetryLater

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


def ua_module() -> Any:
    """asyncua's ``ua`` namespace, imported on first use (its stubs are partial: typed Any)."""
    from asyncua import ua

    return ua


def status_name(code: Any) -> str:
    """``"Good"`` / ``"BadNodeIdUnknown"`` for a StatusCode, its int value or an asyncua error."""
    ua = ua_module()

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
    ua = ua_module()

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


def json_safe(value: Any) -> Any:
    """An asyncua value as message data: datetimes as ISO 8601 text, node ids as their string
    form, localized text as its text, structures as dicts; bytes stay bytes."""
    ua = ua_module()

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
    ua = ua_module()

    if not isinstance(text, str) or not NODE_ID.match(text.strip()):
        raise NodeFailed(f"invalid {source} {text!r} (expected e.g. 'ns=2;s=Tag' or 'i=2258')")
    try:
        return ua.NodeId.from_string(text.strip())
    except Exception as exc:
        raise NodeFailed(f"invalid {source} {text!r}: {exc}") from None
