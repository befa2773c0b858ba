"""The yaml node: text <-> object, js-yaml style output, bad documents, alias bombs."""

from typing import Any

import pytest

from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {"id": "y", "type": "yaml", "property": "payload", "name": "", "wires": [["out"]]}
    node.update(config)
    return [
        node,
        {"id": "out", "type": "helper"},
        {"id": "c1", "type": "catch", "scope": None, "uncaught": False, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def core(**config: Any) -> list[dict[str, Any]]:
    return flow(**config)[:2]


async def test_yaml_text_becomes_an_object() -> None:
    text = "employees:\n  - firstName: John\n    lastName: Smith\n    age: 42\n"
    async with FlowHarness(core()) as h:
        h.receive("y", {"payload": text})
        h.receive("y", {"payload": b"on: 2024-05-01T10:00:00+02:00\nday: 2024-05-01\n"})
        out = await h.wait("out", 2)
    assert out[0]["payload"] == {
        "employees": [{"firstName": "John", "lastName": "Smith", "age": 42}]
    }
    assert out[1]["payload"] == {
        "on": "2024-05-01T08:00:00.000Z",
        "day": "2024-05-01T00:00:00.000Z",
    }


async def test_object_becomes_yaml_with_indented_sequences() -> None:
    async with FlowHarness(core()) as h:
        h.receive("y", {"payload": {"employees": [{"firstName": "John", "age": 42}], "name": "é"}})
        (out,) = await h.wait("out")
    assert out["payload"] == "employees:\n  - firstName: John\n    age: 42\nname: é\n"


async def test_round_trip_to_another_property() -> None:
    async with FlowHarness(core(property="doc", propertyOut="parsed")) as h:
        h.receive("y", {"doc": "a: [1, 2]\nb: {c: true}\n"})
        h.receive("y", {"payload": "no doc here"})
        out = await h.wait("out", 2)
    assert out[0]["parsed"] == {"a": [1, 2], "b": {"c": True}}
    assert out[0]["doc"] == "a: [1, 2]\nb: {c: true}\n"
    assert out[1] == {"payload": "no doc here", "_msgid": out[1]["_msgid"]}


async def test_numbers_are_ignored_with_a_warning() -> None:
    async with FlowHarness(core()) as h:
        h.receive("y", {"payload": 5})
        await h.quiet(0.05)
        assert "out" not in h.messages
        assert any("non-object" in e["msg"] for e in h.logs(30))


async def test_invalid_yaml_and_unsafe_tags_are_catchable_errors() -> None:
    async with FlowHarness(flow()) as h:
        h.receive("y", {"payload": "a: [1, 2\n"})
        h.receive("y", {"payload": "!!python/object/apply:os.system ['true']"})
        errs = await h.wait("errs", 2)
        assert "out" not in h.messages
    assert all(e["error"]["message"].startswith("Invalid YAML") for e in errs)
    assert errs[0]["error"]["source"]["type"] == "yaml"


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
async def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    async with FlowHarness(flow()) as h:
        h.receive("y", {"payload": "\n".join(lines)})
        (err,) = await h.wait("errs", 1, timeout=10)
    assert "alias bomb" in err["error"]["message"]
