"""Property expressions with ``RED.util.normalisePropertyExpression``'s grammar and error texts;
the table restates the cases of Node-RED's own ``test/unit/@node-red/util/lib/util_spec.js``
(``describe('normalisePropertyExpression')``)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from edge_runner.contract import (
    NodeFailed,
    PropertyRef,
    delete_property,
    get_property,
    parse_path,
    path_text,
    set_property,
)
from edge_runner.testing import FlowHarness

Nested = list[Any]


def normalised(path: str) -> Nested:
    """Node-RED's form without a message: a nested reference is its own parts list."""
    return [
        ["msg", *normalised_parts(p)] if isinstance(p, PropertyRef) else p for p in parse_path(path)
    ]


def normalised_parts(ref: PropertyRef) -> Nested:
    return [["msg", *normalised_parts(p)] if isinstance(p, PropertyRef) else p for p in ref.parts]


VALID: list[tuple[str, Nested]] = [
    ("a.b.c", ["a", "b", "c"]),
    ('a["b"]["c"]', ["a", "b", "c"]),
    ('a["b"].c', ["a", "b", "c"]),
    ("a['b'].c", ["a", "b", "c"]),
    ("a[0].c", ["a", 0, "c"]),
    ("a.0.c", ["a", 0, "c"]),
    ("a['a.b[0]'].c", ["a", "a.b[0]", "c"]),
    ("a[0][0][0]", ["a", 0, 0, 0]),
    ("'1.2.3.4'", ["1.2.3.4"]),
    ("'a.b'[1]", ["a.b", 1]),
    ("'a.b'.c", ["a.b", "c"]),
    ("a[msg.b]", ["a", ["msg", "b"]]),
    ("a[msg[msg.b]]", ["a", ["msg", ["msg", "b"]]]),
    ("a[msg['b]\"[']]", ["a", ["msg", 'b]"[']]),
    ("a[msg['b][']]", ["a", ["msg", "b]["]]),
    ("b[msg.a][2]", ["b", ["msg", "a"], 2]),
    ("a.$b.c", ["a", "$b", "c"]),
    ('a["$b"].c', ["a", "$b", "c"]),
    ("a._b.c", ["a", "_b", "c"]),
    ('a["_b"].c', ["a", "_b", "c"]),
    # beyond util_spec: what real flows write
    ("headers.content-type", ["headers", "content-type"]),
    ("payload.température", ["payload", "température"]),
]

INVALID: list[tuple[str, str]] = [
    ("a'b'.c", "Invalid property expression: unexpected ' at position 1"),
    ("a['b'.c", "Invalid property expression: unexpected array expression at position 3"),
    ("a[]", "Invalid property expression: unexpected ] at position 2"),
    ("a]", "Invalid property expression: unexpected ] at position 1"),
    ("a[", "Invalid property expression: unterminated expression"),
    ("a[0d]", "Invalid property expression: unexpected array expression at position 2"),
    ("a['", "Invalid property expression: unterminated expression"),
    ("a[']", "Invalid property expression: unterminated expression"),
    ("a[0']", "Invalid property expression: unexpected ' at position 3"),
    ("a.[0]", "Invalid property expression: unexpected [ at position 2"),
    ("[0]", "Invalid property expression: unexpected [ at position 0"),
    ("a[0", "Invalid property expression: unterminated expression"),
    ("a.", "Invalid property expression: unterminated expression"),
    (".a", "Invalid property expression: unexpected . at position 0"),
    ("a. b", "Invalid property expression: unexpected   at position 2"),
    (" a.b", "Invalid property expression: unexpected ' ' at position 0"),
    ("a[0].[1]", "Invalid property expression: unexpected [ at position 5"),
    ("a['']", "Invalid property expression: zero-length string at position 3"),
    ("'a.b'c", "Invalid property expression: unexpected c expression at position 5"),
    ("", "Invalid property expression: zero-length"),
    ("a[b]", "Invalid property expression: unexpected b at position 2"),
    ("a[msg.]", "Invalid expression started at position 2"),
    ("a[msg[]", "Invalid property expression: unmatched '[' at position 1"),
    ("a[msg.[]]", "Invalid expression started at position 2"),
    ("a[msg['af]]", "Invalid expression started at position 2"),
]


@pytest.mark.parametrize(("path", "expected"), VALID)
def test_valid_expressions_normalise_like_node_red(path: str, expected: Nested) -> None:
    assert normalised(path) == expected


@pytest.mark.parametrize(("path", "message"), INVALID)
def test_invalid_expressions_fail_with_node_reds_text(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_path(path)


def test_nested_references_resolve_against_the_message() -> None:
    msg: dict[str, Any] = {"a": "foo", "i": 1, "b": {"foo": [10, 20, 30]}}
    assert get_property(msg, "b[msg.a][2]") == 30
    assert get_property(msg, "b.foo[msg.i]") == 20
    assert set_property(msg, "out[msg.a]", 5)
    assert msg["out"] == {"foo": 5}
    assert delete_property(msg, "out[msg.a]")
    assert msg["out"] == {}
    with pytest.raises(NodeFailed, match="Invalid expression started at position 2"):
        get_property({}, "b[msg.undefined][2]")


async def test_a_change_and_a_switch_node_use_the_full_grammar() -> None:
    flows = [
        {"id": "in", "type": "helper", "wires": [["ch"]]},
        {
            "id": "ch",
            "type": "change",
            "rules": [
                {"t": "set", "p": "headers.content-type", "pt": "msg", "to": "text/csv"},
                {"t": "set", "p": "by[msg.topic]", "pt": "msg", "to": "payload", "tot": "msg"},
            ],
            "wires": [["sw"]],
        },
        {
            "id": "sw",
            "type": "switch",
            "property": 'by["line-1"]',
            "rules": [{"t": "gt", "v": "5", "vt": "num"}],
            "outputs": 1,
            "wires": [["out"]],
        },
        {"id": "out", "type": "helper"},
    ]
    async with FlowHarness(flows) as h:
        h.receive("in", {"topic": "line-1", "payload": 3})
        h.receive("in", {"topic": "line-1", "payload": 7})
        (msg,) = await h.wait("out")
    assert msg["headers"] == {"content-type": "text/csv"}
    assert msg["by"] == {"line-1": 7}


async def test_a_context_key_with_a_nested_reference_names_a_key_per_message() -> None:
    flows = [
        {"id": "in", "type": "helper", "wires": [["ch"]]},
        {
            "id": "ch",
            "type": "change",
            "rules": [
                {"t": "set", "p": "last[msg.topic]", "pt": "flow", "to": "payload", "tot": "msg"},
                {"t": "set", "p": "seen", "pt": "msg", "to": "last", "tot": "flow"},
            ],
            "wires": [["out"]],
        },
        {"id": "out", "type": "helper"},
    ]
    async with FlowHarness(flows) as h:
        h.receive("in", {"topic": "line-1", "payload": 3})
        h.receive("in", {"topic": "line 2", "payload": 4})
        h.receive("in", {"payload": 5})  # no topic: Node-RED's undefined-reference error
        first, second = await h.wait("out", 2)
        errors = [e["msg"] for e in h.logs(20)]
    assert first["seen"] == {"line-1": 3}
    assert second["seen"] == {"line-1": 3, "line 2": 4}
    assert any("Invalid expression started at position 5" in text for text in errors)


def test_resolved_paths_print_like_node_red() -> None:
    assert path_text(["a", "123", 0, "fred"]) == 'a["123"][0]["fred"]'
    assert path_text(["a", 'say "hi"']) == "a['say \"hi\"']"
