"""switch: every rule type, checkall, property types, previous value, sequences and repair."""

from __future__ import annotations

import math
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def switch(rules: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    outs = [f"o{i}" for i in range(len(rules))]
    node = {
        "id": "n1",
        "type": "switch",
        "property": "payload",
        "propertyType": "msg",
        "rules": rules,
        "checkall": "true",
        "outputs": len(rules),
        "wires": [[o] for o in outs],
        **extra,
    }
    return [node, *({"id": o, "type": "helper"} for o in outs)]


async def routed(
    flow: list[dict[str, Any]], *msgs: dict[str, Any], env: dict[str, str] | None = None
) -> dict[str, list[Any]]:
    """Send ``msgs`` and return, per output, the payloads that came out of it."""
    async with FlowHarness(flow, env=env) as h:
        for msg in msgs:
            h.receive("n1", msg)
        await h.quiet(0.03)
        return {k: [m.get("payload") for m in v] for k, v in h.messages.items()}


@pytest.mark.parametrize("case", conformance_cases("switch"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


@pytest.mark.parametrize(
    ("rule", "passes", "fails"),
    [
        ({"t": "eq", "v": "5", "vt": "num"}, ["5", 5], [6, "x", None]),
        ({"t": "neq", "v": "a", "vt": "str"}, ["b", 1], ["a"]),
        ({"t": "lt", "v": "10", "vt": "num"}, [9, "9", None], [10, "x"]),
        ({"t": "lte", "v": "10", "vt": "num"}, [10], [11]),
        ({"t": "gt", "v": "b", "vt": "str"}, ["c"], ["a", "b"]),
        ({"t": "gte", "v": "0", "vt": "num"}, [0, True], [-1]),
        ({"t": "btwn", "v": "1", "vt": "num", "v2": "3", "v2t": "num"}, [1, 2, 3], [0, 4]),
        ({"t": "cont", "v": "ell", "vt": "str"}, ["hello", ["hell", "o"]], ["help"]),
        ({"t": "regex", "v": "^A\\d+$", "vt": "str", "case": True}, ["a12", "A1"], ["a", "xA1"]),
        ({"t": "regex", "v": "^A", "vt": "str"}, ["Ab"], ["ab"]),
        ({"t": "true"}, [True], [1, "true"]),
        ({"t": "false"}, [False], [0, None]),
        ({"t": "null"}, [None], [0, ""]),
        ({"t": "nnull"}, [0, ""], [None]),
        ({"t": "empty"}, ["", [], {}, b""], [0, None, "x", [1]]),
        ({"t": "nempty"}, ["x", [1], {"a": 1}, b"\x00"], ["", 0, None]),
        ({"t": "istype", "v": "string", "vt": "string"}, ["s"], [1]),
        ({"t": "istype", "v": "number", "vt": "number"}, [0, 1.5], [math.nan, "1"]),
        ({"t": "istype", "v": "boolean", "vt": "boolean"}, [False], [0]),
        ({"t": "istype", "v": "array", "vt": "array"}, [[]], [{}]),
        ({"t": "istype", "v": "buffer", "vt": "buffer"}, [b"x"], ["x"]),
        ({"t": "istype", "v": "object", "vt": "object"}, [{}], [[], None, b""]),
        ({"t": "istype", "v": "json", "vt": "json"}, ['{"a":1}', "1", 5], ["{a", {"a": 1}]),
        ({"t": "istype", "v": "null", "vt": "null"}, [None], [0]),
        ({"t": "hask", "v": "a", "vt": "str"}, [{"a": None}], [{"b": 1}, "a", None]),
        ({"t": "jsonata_exp", "v": "payload % 2 = 0", "vt": "jsonata"}, [2, 4], [1]),
    ],
)
async def test_rule(rule: dict[str, Any], passes: list[Any], fails: list[Any]) -> None:
    flow = switch([rule])
    for value in passes:
        got = await routed(flow, {"payload": value})
        assert len(got.get("o0", [])) == 1, f"{value!r} should pass {rule}"
    for value in fails:
        got = await routed(flow, {"payload": value})
        assert "o0" not in got, f"{value!r} should not pass {rule}"


async def test_missing_property_is_undefined() -> None:
    got = await routed(
        switch([{"t": "null"}, {"t": "istype", "v": "undefined", "vt": "undefined"}]),
        {"topic": "no payload"},
    )
    assert len(got["o0"]) == 1
    assert len(got["o1"]) == 1


async def test_checkall_false_stops_at_the_first_match() -> None:
    rules = [{"t": "gt", "v": "0", "vt": "num"}, {"t": "gt", "v": "1", "vt": "num"}]
    assert await routed(switch(rules, checkall="false"), {"payload": 5}) == {"o0": [5]}
    both = await routed(switch(rules), {"payload": 5})
    assert both == {"o0": [5], "o1": [5]}


async def test_matches_on_two_outputs_are_independent_copies() -> None:
    flow = switch([{"t": "nnull"}, {"t": "nnull"}])
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": {"a": 1}})
        (first,) = await h.wait("o0")
        (second,) = await h.wait("o1")
        assert first == second
        assert first["payload"] is not second["payload"]


async def test_otherwise_matches_only_when_nothing_before_it_did() -> None:
    rules = [{"t": "eq", "v": "1", "vt": "num"}, {"t": "else"}]
    assert await routed(switch(rules), {"payload": 1}, {"payload": 2}) == {"o0": [1], "o1": [2]}


async def test_values_from_msg_flow_global_and_env() -> None:
    flow = switch(
        [
            {"t": "eq", "v": "limit", "vt": "msg"},
            {"t": "eq", "v": "x", "vt": "flow"},
            {"t": "eq", "v": "LIMIT", "vt": "env"},
        ]
    )
    async with FlowHarness(flow, env={"LIMIT": "7"}) as h:
        h.engine.nodes["n1"].flow.set("x", 3)
        h.receive("n1", {"payload": 2, "limit": 2})
        h.receive("n1", {"payload": 3})
        h.receive("n1", {"payload": 7})
        await h.quiet(0.03)
        assert [m["payload"] for m in h.messages["o0"]] == [2]
        assert [m["payload"] for m in h.messages["o1"]] == [3]
        assert [m["payload"] for m in h.messages["o2"]] == [7]


async def test_property_from_flow_context_and_env() -> None:
    flow = switch([{"t": "eq", "v": "on", "vt": "str"}], property="mode", propertyType="flow")
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": 1})
        h.engine.nodes["n1"].flow.set("mode", "on")
        h.receive("n1", {"payload": 2})
        await h.quiet(0.03)
        assert [m["payload"] for m in h.messages["o0"]] == [2]
    env_flow = switch([{"t": "eq", "v": "prod", "vt": "str"}], property="STAGE", propertyType="env")
    assert await routed(env_flow, {"payload": 1}, env={"STAGE": "prod"}) == {"o0": [1]}


def sequence(values: list[Any], gid: str = "g1") -> list[dict[str, Any]]:
    return [
        {"payload": v, "parts": {"id": gid, "index": i, "count": len(values)}}
        for i, v in enumerate(values)
    ]


async def test_head_tail_and_index_on_a_sequence() -> None:
    flow = switch(
        [
            {"t": "head", "v": "2", "vt": "num"},
            {"t": "tail", "v": "1", "vt": "num"},
            {"t": "index", "v": "1", "vt": "num", "v2": "2", "v2t": "num"},
        ]
    )
    got = await routed(flow, *sequence(["a", "b", "c", "d"]))
    assert got == {"o0": ["a", "b"], "o1": ["d"], "o2": ["b", "c"]}


async def test_jsonata_sequence_bindings() -> None:
    flow = switch([{"t": "jsonata_exp", "v": "$I = $N - 1", "vt": "jsonata"}])
    assert await routed(flow, *sequence([1, 2, 3])) == {"o0": [3]}


async def test_repair_rewrites_parts_per_output() -> None:
    flow = switch([{"t": "lt", "v": "10", "vt": "num"}, {"t": "else"}], repair=True)
    async with FlowHarness(flow) as h:
        for msg in sequence([1, 20, 2, 30, 3]):
            h.receive("n1", msg)
        low = await h.wait("o0", 3)
        high = await h.wait("o1", 2)
        assert [m["payload"] for m in low] == [1, 2, 3]
        assert [(m["parts"]["index"], m["parts"]["count"]) for m in low] == [(0, 3), (1, 3), (2, 3)]
        assert [(m["parts"]["index"], m["parts"]["count"]) for m in high] == [(0, 2), (1, 2)]
        assert low[0]["parts"]["id"] != high[0]["parts"]["id"]
        assert low[0]["parts"]["id"] != "g1"


async def test_head_without_parts_is_a_catchable_error() -> None:
    flow = switch([{"t": "head", "v": "1", "vt": "num"}])
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": 1})
        await h.quiet(0.03)
        assert "o0" not in h.messages
        assert "msg.parts" in h.logs(20)[0]["msg"]


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"t": "regex", "v": "(", "vt": "str"}, "regular expression"),
        ({"t": "jsonata_exp", "v": "(", "vt": "jsonata"}, "JSONata"),
        ({"t": "sometimes"}, "t"),
    ],
)
async def test_bad_rules_are_rejected_at_deploy(rule: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DeployError) as info:
        async with FlowHarness(switch([rule])):
            pass
    assert fragment in str(info.value)
