"""The debug node: Node-RED's sidebar encoding, complete/property/JSONata, status, active."""

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from edge_runner.nodes.debug import UNDEFINED, Config, DebugNode, encode_value
from edge_runner.testing import FlowHarness


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "d1",
        "type": "debug",
        "name": "dbg",
        "active": True,
        "tosidebar": True,
        "console": False,
        "tostatus": False,
        "complete": "payload",
        "targetType": "msg",
        "statusVal": "",
        "statusType": "auto",
        "wires": [],
    }
    node.update(config)
    return [node]


def sidebar(h: FlowHarness) -> list[dict[str, Any]]:
    return [d for t, d in h.events if t == "debug" and "level" not in d]


async def test_complete_message_is_one_json_string_with_markers() -> None:
    async with FlowHarness(flow(complete="true", targetType="full")) as h:
        h.receive(
            "d1",
            {
                "_msgid": "m1",
                "payload": {"a": 1, "b": [1, 2], "buf": b"\x01\x02\xff"},
                "topic": "tp",
                "n": math.nan,
                "s": "hi",
            },
        )
        (item,) = sidebar(h)
    assert item["format"] == "Object"
    assert "property" not in item
    assert (item["id"], item["z"], item["path"], item["name"], item["topic"]) == (
        "d1",
        "t1",
        "t1",
        "dbg",
        "tp",
    )
    assert json.loads(item["msg"]) == {
        "_msgid": "m1",
        "payload": {
            "a": 1,
            "b": [1, 2],
            "buf": {"type": "Buffer", "data": [1, 2, 255], "__enc__": True, "length": 3},
        },
        "topic": "tp",
        "n": {"__enc__": True, "type": "number", "data": "NaN"},
        "s": "hi",
    }


async def test_property_output_has_property_and_format() -> None:
    async with FlowHarness(flow(complete="payload.x")) as h:
        h.receive("d1", {"payload": {"x": [1, 2, 3]}})
        h.receive("d1", {"payload": {}})
        first, second = sidebar(h)
    assert (first["property"], first["msg"], first["format"]) == (
        "payload.x",
        "[1,2,3]",
        "array[3]",
    )
    assert "topic" not in first
    assert (second["msg"], second["format"]) == ("(undefined)", "undefined")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, ("5", "number")),
        (2.5, ("2.5", "number")),
        (3.0, ("3", "number")),
        (math.nan, ("NaN", "number")),
        (-math.inf, ("-Infinity", "number")),
        ("héllo", ("héllo", "string[5]")),
        (True, ("true", "boolean")),
        (b"\x01\x02\xff", ("0102ff", "buffer[3]")),
        (None, ("(undefined)", "null")),
        (UNDEFINED, ("(undefined)", "undefined")),
        ({"a": None}, ('{"a":null}', "Object")),
        ([], ("[]", "array[0]")),
        (ValueError("bad"), ('{"name":"ValueError","message":"bad"}', "error")),
    ],
)
def test_encode_value_matches_node_red(value: Any, expected: tuple[str, str]) -> None:
    assert encode_value(value) == expected


def test_long_strings_and_arrays_are_cut() -> None:
    text, fmt = encode_value("x" * 1500)
    assert fmt == "string[1500]"
    assert text == "x" * 1000 + "..."
    text, fmt = encode_value(list(range(1500)))
    assert fmt == "array[1500]"
    doc = json.loads(text)
    assert doc["__enc__"] is True
    assert doc["type"] == "array"
    assert doc["length"] == 1500
    assert doc["data"] == list(range(1000))
    nested = json.loads(encode_value({"s": "y" * 1001, "a": list(range(1001))})[0])
    assert nested["s"] == "y" * 1000 + "..."
    assert nested["a"]["length"] == 1001
    assert len(nested["a"]["data"]) == 1000
    hex_text, fmt = encode_value(bytes(800))
    assert fmt == "buffer[800]"
    assert len(hex_text) == 1000


async def test_jsonata_output() -> None:
    async with FlowHarness(flow(complete="payload * 2", targetType="jsonata")) as h:
        h.receive("d1", {"payload": 21})
        (item,) = sidebar(h)
    assert (item["msg"], item["format"]) == ("42", "number")
    assert "property" not in item


async def test_inactive_or_not_to_sidebar_sends_nothing() -> None:
    async with FlowHarness(
        [*flow(active=False), {**flow()[0], "id": "d2", "tosidebar": False}]
    ) as h:
        h.receive("d1", {"payload": 1})
        h.receive("d2", {"payload": 1})
        node = h.node("d1")
        assert isinstance(node, DebugNode)
        node.set_active(True)
        h.receive("d1", {"payload": 2})
        items = sidebar(h)
    assert [i["msg"] for i in items] == ["2"]


async def test_status_shows_the_value_and_changes_only_when_needed() -> None:
    async with FlowHarness(flow(tostatus=True, tosidebar=False)) as h:
        h.receive("d1", {"payload": "hi"})
        h.receive("d1", {"payload": "hi"})
        h.receive("d1", {"payload": "a long text that is longer than thirty-two chars"})
        h.receive("d1", {"payload": {"fill": "green", "shape": "ring", "text": "ok"}})
    statuses = h.statuses("d1")
    assert statuses == [
        {"fill": "grey", "shape": "ring"},
        {"fill": "grey", "shape": "dot", "text": "hi"},
        {"fill": "grey", "shape": "dot", "text": "a long text that is longer than ..."},
        {"fill": "green", "shape": "ring", "text": "ok"},
        {},
    ]


async def test_status_from_another_property_and_error_messages() -> None:
    async with FlowHarness(
        [
            *flow(tostatus=True, tosidebar=False, statusType="msg", statusVal="topic"),
            {**flow()[0], "id": "d2", "tostatus": True, "tosidebar": False},
        ]
    ) as h:
        h.receive("d1", {"payload": 1, "topic": "the topic"})
        h.receive("d2", {"payload": 1, "error": {"message": "boom"}})
    assert {"fill": "grey", "shape": "dot", "text": "the topic"} in h.statuses("d1")
    assert {"fill": "red", "shape": "dot", "text": "boom"} in h.statuses("d2")


async def test_console_output_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="edge_runner.debug")
    async with FlowHarness(flow(console=True, tosidebar=False)) as h:
        h.receive("d1", {"payload": {"k": 1}})
    assert any('{"k":1}' in r.getMessage() for r in caplog.records)


async def test_own_status_message_is_ignored() -> None:
    async with FlowHarness(flow()) as h:
        h.receive("d1", {"status": {"text": "x", "source": {"id": "d1"}}})
        assert sidebar(h) == []


def test_legacy_and_strict_schema() -> None:
    assert Config.model_validate({"complete": True}).complete == "true"
    assert Config.model_validate({"complete": "false"}).complete == "payload"
    assert Config.model_validate({"console": "true"}).console is True
    with pytest.raises(ValidationError):
        Config.model_validate({"targetType": "bogus"})
    assert Config.model_validate({"unknown_field": 1}) == Config()


def test_runtime_objects_are_internal_markers() -> None:
    import asyncio

    from edge_runner.runtime.http_routes import ResponseHandle

    loop = asyncio.new_event_loop()
    try:
        handle = ResponseHandle(loop.create_future(), "m1")
        text, fmt = encode_value({"res": handle, "f": len, "u": UNDEFINED})
    finally:
        loop.close()
    assert fmt == "Object"
    assert json.loads(text) == {
        "res": {"__enc__": True, "type": "internal"},
        "f": {"__enc__": True, "type": "function"},
        "u": {"__enc__": True, "type": "undefined"},
    }


async def test_complete_true_means_the_whole_message_whatever_the_target_type() -> None:
    async with FlowHarness(flow(complete="true", targetType="msg")) as h:
        h.receive("d1", {"payload": 1})
        (item,) = sidebar(h)
    assert item["format"] == "Object"
    assert json.loads(item["msg"])["payload"] == 1
