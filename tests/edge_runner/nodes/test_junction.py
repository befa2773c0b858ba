"""Junctions: wired through at deploy (no hop), in subflows, after link nodes, loops, disabled."""

from typing import Any

import pytest

from edge_runner.testing import FlowHarness
from edge_runner.validate import validate

pytestmark = pytest.mark.asyncio


def junction(node_id: str, *targets: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "junction",
        "z": "t1",
        "x": 10,
        "y": 10,
        "wires": [list(targets)],
        **extra,
    }


def helper(node_id: str, *targets: str) -> dict[str, Any]:
    return {"id": node_id, "type": "helper", "z": "t1", "wires": [list(targets)]}


async def test_junctions_are_wired_through_so_a_message_crosses_no_extra_hop() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        helper("src", "j1"),
        junction("j1", "a", "j2"),
        junction("j2", "b", "c"),
        helper("a"),
        helper("b"),
        helper("c"),
    ]
    assert validate(flow) == []
    async with FlowHarness(flow) as h:
        assert "j1" not in h.engine.nodes
        assert "j2" not in h.engine.nodes
        assert [rt.id for rt in h.engine.nodes["src"].wires[0]] == ["a", "b", "c"]
        h.receive("src", {"payload": {"n": 1}, "topic": "t"})
        for target in ("a", "b", "c"):
            (msg,) = await h.wait(target)
            assert (msg["payload"], msg["topic"]) == ({"n": 1}, "t")
        h.node("a").rt.send({"payload": "again"})
        await h.quiet(0.02)
        assert len(h.messages["b"]) == 1


async def test_a_node_wired_directly_and_through_a_junction_gets_both_deliveries() -> None:
    flow = [helper("src", "b", "j1"), junction("j1", "b"), helper("b")]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 1})
        await h.wait("b", 2)
        await h.quiet(0.02)
        assert [m["payload"] for m in h.messages["b"]] == [1, 1]


async def test_junction_inside_a_subflow_on_its_input_and_output_ports() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {
            "id": "sf",
            "type": "subflow",
            "name": "fan",
            "in": [{"x": 0, "y": 0, "wires": [{"id": "sj"}]}],
            "out": [{"x": 0, "y": 0, "wires": [{"id": "sj", "port": 0}]}],
        },
        {"id": "sj", "type": "junction", "z": "sf", "wires": [["inner"]]},
        {"id": "inner", "type": "helper", "z": "sf", "wires": [[]]},
        {"id": "inst", "type": "subflow:sf", "z": "t1", "wires": [["jout"]]},
        junction("jout", "cap"),
        helper("cap"),
    ]
    async with FlowHarness(flow) as h:
        assert "inst.sj" not in h.engine.nodes
        h.receive("inst", {"payload": "in"})
        (inner,) = await h.wait("inst.inner")
        (out,) = await h.wait("cap")
        assert inner["payload"] == out["payload"] == "in"


async def test_link_in_to_a_junction_and_a_junction_to_a_link_out() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {"id": "t2", "type": "tab"},
        helper("src", "jo"),
        junction("jo", "lo"),
        {
            "id": "lo",
            "type": "link out",
            "z": "t1",
            "mode": "link",
            "links": ["li"],
            "wires": [],
        },
        {"id": "li", "type": "link in", "z": "t2", "links": ["lo"], "wires": [["ji"]]},
        {"id": "ji", "type": "junction", "z": "t2", "wires": [["cap"]]},
        {"id": "cap", "type": "helper", "z": "t2", "wires": [[]]},
    ]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 42})
        (msg,) = await h.wait("cap")
        assert msg["payload"] == 42


async def test_a_loop_of_junctions_ends_where_it_closes() -> None:
    flow = [helper("src", "j1"), junction("j1", "j2"), junction("j2", "j1", "cap"), helper("cap")]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 1})
        await h.wait("cap")
        await h.quiet(0.05)
        assert len(h.messages["cap"]) == 1


async def test_disabled_junction_drops_its_wires_and_redeploy_rewires() -> None:
    flow = [helper("src", "j1"), junction("j1", "a", d=True), helper("a"), helper("b")]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 1})
        await h.quiet(0.05)
        assert "a" not in h.messages
        rewired = [helper("src", "j1"), junction("j1", "b"), helper("a"), helper("b")]
        await h.engine.deploy(h.flow[:1] + rewired)
        h.receive("src", {"payload": 2})
        (msg,) = await h.wait("b")
        assert msg["payload"] == 2
        assert "a" not in h.messages


async def test_a_junction_wired_to_a_missing_node_still_feeds_the_others() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        helper("src", "j1"),
        junction("j1", "nope", "a"),
        helper("a"),
    ]
    problems = validate(flow)
    assert [(p.node_id, p.severity) for p in problems] == [("j1", "warning")]
    assert "'nope'" in problems[0].message
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": 1})
        (msg,) = await h.wait("a")
        assert msg["payload"] == 1
