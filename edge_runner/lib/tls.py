"""TLS failures found in any client library's exception chain (MQTT, HTTP, OPC-UA)."""

from __future__ import annotations

import ssl

from edge_runner.contract import NeedsUserFix


def tls_failure(exc: BaseException) -> NeedsUserFix | None:
    """A ``NeedsUserFix`` for a TLS problem anywhere in ``exc``'s chain (client libraries
    re-raise ``ssl`` errors as their own, keeping the original as cause or context), or None.
    The text starts with the short reason nodes show in their status."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            detail = current.verify_message or str(current)
            return NeedsUserFix(f"certificate verify failed: {detail}")
        if isinstance(current, ssl.SSLError):
            reason = (current.reason or str(current)).lower().replace("_", " ")
            if "certificate required" in reason or "handshake failure" in reason:
                return NeedsUserFix(f"client certificate rejected: {reason}")
            if "bad certificate" in reason or "unknown ca" in reason:
                return NeedsUserFix(f"client certificate rejected: {reason}")
            return NeedsUserFix(f"TLS failed: {reason}")
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return NeedsUserFix(f"certificate verify failed: {text}")
    lowered = text.lower()
    for alert in ("alert certificate required", "alert bad certificate", "alert unknown ca"):
        if alert in lowered:
            return NeedsUserFix(f"client certificate rejected: {text}")
    return None
