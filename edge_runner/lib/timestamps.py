"""Timestamps in the forms industrial sources use, to ms since the Unix epoch.

Shared by the ``tag-context`` and historian nodes and the historian backends, so it lives below
both (``edge_runner.lib``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from edge_runner.contract import NodeFailed

# OPC-UA DateTime: 100-ns ticks since 1601-01-01 UTC
OPCUA_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
TICKS_TO_UNIX_MS = 11_644_473_600_000  # ms between 1601-01-01 and 1970-01-01
# Auto-detection thresholds for numbers: seconds until year 5138, ms until 5138 too,
# then OPC-UA ticks (today ~1.3e17).
SECONDS_LIMIT = 1e11
MS_LIMIT = 1e14

TimeFormat = Literal["auto", "s", "ms", "iso", "opcua"]


def to_epoch_ms(value: Any, fmt: TimeFormat = "auto") -> float:
    """A timestamp in any supported form -> ms since the Unix epoch (UTC)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp() * 1000.0
    if isinstance(value, str):
        text = value.strip()
        if fmt == "iso":
            return _iso(text)
        try:
            number = float(text)
        except ValueError:
            if fmt != "auto":
                raise NodeFailed(f"timestamp {value!r} is not a number ({fmt})") from None
            return _iso(text)
        return to_epoch_ms(number, fmt)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NodeFailed(f"timestamp {value!r} is not a time")
    if fmt == "auto":
        fmt = "s" if abs(value) < SECONDS_LIMIT else "ms" if abs(value) < MS_LIMIT else "opcua"
    if fmt == "s":
        return float(value) * 1000.0
    if fmt == "ms":
        return float(value)
    if fmt == "opcua":
        return value / 10_000 - TICKS_TO_UNIX_MS
    raise NodeFailed(f"timestamp {value!r} is not an ISO 8601 string")


def _iso(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NodeFailed(f"timestamp {text!r} is not ISO 8601 nor a number") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000.0


def opcua_ticks(moment: datetime) -> int:
    """The OPC-UA DateTime (100-ns ticks since 1601) of ``moment`` (tests and tools)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - OPCUA_EPOCH) // timedelta(microseconds=1) * 10
