"""Optional RFC 5424 forwarding of audit events to ``MANIFOLD_AUDIT_SYSLOG``.

``udp://host:port`` sends one datagram per event; ``tcp://host:port`` uses octet-counting
framing (RFC 6587). Forwarding runs after commit and never fails the request: a collector that
is down costs a log line, not an outage. The database stays the system of record.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings

if TYPE_CHECKING:
    from apps.audit.models import AuditEvent

logger = logging.getLogger(__name__)

# facility authpriv (10), severity notice (5)
PRIORITY = 10 * 8 + 5
APP_NAME = "manifold"
SD_ID = "manifold@32473"
SEND_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class SyslogTarget:
    protocol: str
    host: str
    port: int


def syslog_target() -> SyslogTarget | None:
    """Parse ``AUDIT_SYSLOG_URL`` (setting) or ``MANIFOLD_AUDIT_SYSLOG`` (environment)."""
    url = getattr(settings, "AUDIT_SYSLOG_URL", None)
    if url is None:
        url = os.environ.get("MANIFOLD_AUDIT_SYSLOG", "")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"udp", "tcp"} or not parts.hostname or not parts.port:
        raise ValueError(f"MANIFOLD_AUDIT_SYSLOG must look like udp://host:port, not {url!r}")
    return SyslogTarget(parts.scheme, parts.hostname, parts.port)


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    # Header fields are PRINTUSASCII without spaces; anything else becomes "_".
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in value)[:limit]
    return cleaned or "-"


def format_event(event: AuditEvent, hostname: str | None = None) -> bytes:
    """Render one event as an RFC 5424 message (UTF-8 MSG with BOM)."""
    host = _header_token(hostname or socket.gethostname(), 255)
    timestamp = event.created_at.isoformat().replace("+00:00", "Z")
    params = {
        "team": event.team_slug,
        "seq": str(event.seq),
        "actor": f"{event.actor_type}:{event.actor_id}",
        "hash": event.hash or "",
    }
    structured = (
        "["
        + SD_ID
        + "".join(f' {name}="{_sd_escape(value)}"' for name, value in params.items())
        + "]"
    )
    body = json.dumps(
        {
            "id": event.pk,
            **event.hashed_fields(),
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    header = (
        f"<{PRIORITY}>1 {timestamp} {host} {APP_NAME} {os.getpid()} "
        f"{_header_token(event.event, 32)} {structured} "
    )
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + body.encode("utf-8")


def forward_event(event: AuditEvent) -> bool:
    """Send one event; return whether it left this process. Never raises on network errors."""
    return send_message(format_event(event))


def format_anchor(anchor: dict[str, object], hostname: str | None = None) -> bytes:
    """Render one signed chain-head checkpoint (``apps.audit.anchors``) as an RFC 5424 message."""
    host = _header_token(hostname or socket.gethostname(), 255)
    params = {name: str(anchor[name]) for name in ("chain", "team", "seq", "hash", "signature")}
    structured = (
        "["
        + SD_ID
        + "".join(f' {name}="{_sd_escape(value)}"' for name, value in params.items())
        + "]"
    )
    body = json.dumps(anchor, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    header = (
        f"<{PRIORITY}>1 {anchor['at']} {host} {APP_NAME} {os.getpid()} audit.anchor {structured} "
    )
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + body.encode("utf-8")


def send_message(message: bytes) -> bool:
    """Send one formatted message to the configured collector; False if none or unreachable."""
    target = syslog_target()
    if target is None:
        return False
    try:
        if target.protocol == "udp":
            with socket.socket(_family(target.host), socket.SOCK_DGRAM) as sock:
                sock.sendto(message, (target.host, target.port))
        else:
            with socket.create_connection(
                (target.host, target.port), timeout=SEND_TIMEOUT_SECONDS
            ) as sock:
                sock.sendall(str(len(message)).encode("ascii") + b" " + message)
    except OSError as error:
        logger.warning("audit syslog forwarding to %s failed: %s", target, error)
        return False
    return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
