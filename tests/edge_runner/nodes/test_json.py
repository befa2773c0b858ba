"""The json node: string <-> object, actions, bytes, errors routed to catch, schema."""

from typing import Any

import pytest

from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "json",
        "property": "payload",
        "action": "",
        "pretty": False,
        "name": "",
        "wires": [["out"]],
    }
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def core(**config: Any) -> list[dict[str, Any]]:
    """Without the catch node (owned by another engineer) for tests that do not need it."""
    return flow(**config)[:2]


async def test_object_becomes_compact_string_and_string_becomes_object() -> None:
    async with FlowHarness(core()) as h:
        h.receive("n1", {"payload": {"employees": [{"firstName": "John", "lastName": "Smith"}]}})
        h.receive("n1", {"payload": '{"a": [1, 2.5, "é"]}'})
        h.receive("n1", {"payload": [1, 2, 3]})
        h.receive("n1", {"payload": True})
        out = await h.wait("out", 4)
    assert out[0]["payload"] == '{"employees":[{"firstName":"John","lastName":"Smith"}]}'
    assert out[1]["payload"] == {"a": [1, 2.5, "é"]}
    assert out[2]["payload"] == "[1,2,3]"
    assert out[3]["payload"] == "true"


async def test_pretty_indents_by_four_spaces() -> None:
    async with FlowHarness(core(pretty=True)) as h:
        h.receive("n1", {"payload": {"a": 1}})
        (out,) = await h.wait("out")
    assert out["payload"] == '{\n    "a": 1\n}'


async def test_action_str_keeps_strings_and_obj_keeps_objects() -> None:
    async with FlowHarness(core(action="str")) as h:
        h.receive("n1", {"payload": '{"a":1}'})
        h.receive("n1", {"payload": {"a": 1}})
        out = await h.wait("out", 2)
    assert [m["payload"] for m in out] == ['{"a":1}', '{"a":1}']
    async with FlowHarness(core(action="obj")) as h:
        h.receive("n1", {"payload": {"a": 1}})
        h.receive("n1", {"payload": "[1]"})
        out = await h.wait("out", 2)
    assert [m["payload"] for m in out] == [{"a": 1}, [1]]


async def test_bytes_are_parsed_as_utf8_text() -> None:
    async with FlowHarness(core()) as h:
        h.receive("n1", {"payload": b'{"temp": 21.5}'})
        (out,) = await h.wait("out")
    assert out["payload"] == {"temp": 21.5}


async def test_nested_property_and_missing_property_passes_through() -> None:
    async with FlowHarness(core(property="data.raw")) as h:
        h.receive("n1", {"data": {"raw": '{"x":1}'}})
        h.receive("n1", {"payload": "untouched"})
        out = await h.wait("out", 2)
    assert out[0]["data"]["raw"] == {"x": 1}
    assert out[1]["payload"] == "untouched"


async def test_nan_serialises_like_javascript() -> None:
    async with FlowHarness(core()) as h:
        h.receive("n1", {"payload": {"v": float("nan"), "b": b"\x01\x02"}})
        (out,) = await h.wait("out")
    assert out["payload"] == '{"v":null,"b":{"type":"Buffer","data":[1,2]}}'


async def test_invalid_json_is_a_catchable_error_and_nothing_is_sent() -> None:
    async with FlowHarness(flow()) as h:
        for bad in ("foo", "NaN", "{'a': 1}", b"\xff\xfe"):
            h.receive("n1", {"payload": bad, "topic": "bar"})
        errs = await h.wait("errs", 4)
        await h.quiet(0.05)
        assert "out" not in h.messages
    assert errs[0]["payload"] == "foo"
    assert errs[0]["topic"] == "bar"
    assert errs[0]["error"]["source"] == {"id": "n1", "type": "json", "count": 1}
    assert errs[0]["error"]["message"].startswith("Invalid JSON")
    assert "UTF-8" in errs[3]["error"]["message"]


async def test_schema_validation_passes_and_fails() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}
    async with FlowHarness(flow()) as h:
        h.receive("n1", {"payload": '{"n": 1}', "schema": schema})
        h.receive("n1", {"payload": '{"n": "x"}', "schema": schema})
        h.receive("n1", {"payload": "{}", "schema": {"type": "nope"}})
        (ok,) = await h.wait("out")
        errs = await h.wait("errs", 2)
    assert ok["payload"] == {"n": 1}
    assert "schema" not in ok
    assert errs[0]["error"]["message"] == "JSON Schema error: data/n must be number"
    assert errs[0]["schemaError"] == [
        {
            "instancePath": "/n",
            "schemaPath": "#/properties/n/type",
            "keyword": "type",
            "params": {"type": "number"},
            "message": "must be number",
        }
    ]
    assert errs[1]["error"]["message"] == "JSON Schema error: failed to compile schema"


async def test_schema_errors_are_worded_as_ajv_words_them_for_node_red() -> None:
    schema = {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
            "id": {"type": ["integer", "string"]},
            "level": {"minimum": 0, "maximum": 10.5},
            "code": {"pattern": "^[A-Z]+$", "maxLength": 3},
            "tags": {"minItems": 2},
            "kind": {"enum": ["a", "b"]},
        },
        "additionalProperties": False,
    }
    value = {"id": 1.5, "level": 11, "code": "abcd", "tags": [], "kind": "c", "x": 1}
    async with FlowHarness(flow()) as h:
        h.receive("n1", {"payload": value, "schema": schema})
        (err,) = await h.wait("errs")
    # the text and order ajv 8.20 (Node-RED 5.0.7's) gives for this schema and value
    assert err["error"]["message"] == (
        "JSON Schema error: data must have required property 'name', "
        "data must NOT have additional properties, data/id must be integer,string, "
        "data/level must be <= 10.5, data/code must NOT have more than 3 characters, "
        'data/code must match pattern "^[A-Z]+$", data/tags must NOT have fewer than 2 items, '
        "data/kind must be equal to one of the allowed values"
    )
    assert err["schemaError"][0]["params"] == {"missingProperty": "name"}


async def test_bad_config_is_rejected_at_deploy() -> None:
    from edge_runner.runtime.engine import DeployError

    with pytest.raises(DeployError) as info:
        async with FlowHarness(core(action="yaml")):
            pass
    assert "action" in str(info.value)
