"""JSONata sees messages that carry bytes and non-JSON objects (modbus raw frames, msg.res)."""

import pytest

from edge_runner.contract import NodeFailed
from edge_runner.runtime.typed import evaluate_jsonata, jsonata_view


class Opaque:
    """Stands for objects with no JSON form, such as the http response handle."""


def test_bytes_become_byte_values_and_opaque_objects_are_left_out() -> None:
    msg = {"payload": {"raw": b"\x01\xff", "n": 2}, "res": Opaque(), "list": [Opaque(), 1]}
    assert jsonata_view(msg) == {"payload": {"raw": [1, 255], "n": 2}, "list": [None, 1]}


def test_an_expression_over_a_message_with_bytes_evaluates() -> None:
    msg = {"payload": {"vibration": 4.5}, "modbus": {"raw": b"\x00\x2a"}, "res": Opaque()}
    assert evaluate_jsonata(None, "payload.vibration > 4", msg) is True
    assert evaluate_jsonata(None, "$sum(modbus.raw)", msg) == 42


def test_the_message_itself_is_not_changed() -> None:
    msg = {"payload": b"ab"}
    evaluate_jsonata(None, "payload", msg)
    assert msg == {"payload": b"ab"}


def test_a_syntax_error_is_a_node_failure() -> None:
    with pytest.raises(NodeFailed, match="JSONata"):
        evaluate_jsonata(None, "payload +", {"payload": 1})
