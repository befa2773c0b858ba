"""Shared property handling of the parser nodes (``json``, ``xml``, ``yaml``).

Each parser reads one message property, leaves a message without it untouched and accepts
UTF-8 bytes where it accepts text; the rules (and their error wording) are stated once here.
"""

from __future__ import annotations

from typing import Any, Final

from edge_runner.contract import Msg, Node, NodeFailed, get_property, parse_path

MISSING: Final = object()


def payload_path(value: str) -> str:
    """A validated property path for a parser's *Property* field; empty means ``payload``."""
    value = value or "payload"
    parse_path(value)
    return value


def take_property(node: Node, msg: Msg, path: list[str | int]) -> Any:
    """The value at ``path``, or :data:`MISSING` after passing ``msg`` on unchanged.

    Node-RED's parsers forward a message that lacks the property as it is.
    """
    value = get_property(msg, path, MISSING)
    if value is MISSING:
        node.send(msg)
    return value


def utf8_text(value: bytes | bytearray, kind: str) -> str:
    """``value`` decoded as UTF-8; otherwise a catchable ``Invalid <kind>`` error."""
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NodeFailed(f"Invalid {kind}: bytes are not UTF-8 text ({exc})") from exc
