"""catch: scope, uncaught-only, error shape, loop guard."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def failing(node_id: str, z: str = "t1", g: str | None = None) -> dict[str, Any]:
    node = {
        "id": node_id,
        "type": "python-function",
        "z": z,
        "name": f"{node_id}-name",
        "func": "raise ValueError('no ' + msg['payload'])",
        "outputs": 1,
        "wires": [[]],
    }
    if g:
        node["g"] = g
    return node


def catch(node_id: str, cap: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        {"id": node_id, "type": "catch", "z": "t1", "wires": [[cap]], **fields},
        {"id": cap, "type": "helper", "z": "t1"},
    ]


async def test_error_message_shape_and_the_original_message_is_kept() -> None:
    flow = [{"id": "t1", "type": "tab"}, failing("f"), *catch("c", "errs", scope=None)]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": "luck", "topic": "t"})
        (err,) = await h.wait("errs")
        assert err["payload"] == "luck"
        assert err["topic"] == "t"
        assert err["error"] == {
            "message": "ValueError: no luck (line 1)",
            "source": {"id": "f", "type": "python-function", "name": "f-name", "count": 1},
        }


async def test_scoped_catch_only_sees_its_nodes_and_uncaught_only_the_rest() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        failing("f1"),
        failing("f2"),
        *catch("scoped", "cap_scoped", scope=["f1"]),
        *catch("rest", "cap_rest", scope=None, uncaught=True),
    ]
    async with FlowHarness(flow) as h:
        h.receive("f1", {"payload": "1"})
        h.receive("f2", {"payload": "2"})
        assert [m["payload"] for m in await h.wait("cap_scoped")] == ["1"]
        assert [m["payload"] for m in await h.wait("cap_rest")] == ["2"]


async def test_catch_all_and_group_scope_and_other_tabs_are_not_involved() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {"id": "t2", "type": "tab"},
        {"id": "g1", "type": "group", "z": "t1", "nodes": ["f1"]},
        failing("f1", g="g1"),
        failing("f2"),
        failing("other", z="t2"),
        *catch("all", "cap_all", scope=None),
        {
            "id": "grp",
            "type": "catch",
            "z": "t1",
            "g": "g1",
            "scope": "group",
            "wires": [["cap_group"]],
        },
        {"id": "cap_group", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        for node_id in ("f1", "f2", "other"):
            h.receive(node_id, {"payload": node_id})
        assert sorted(m["payload"] for m in await h.wait("cap_all", 2)) == ["f1", "f2"]
        assert [m["payload"] for m in await h.wait("cap_group")] == ["f1"]
        await h.quiet(0.02)
        assert len(h.messages["cap_all"]) == 2


async def test_an_error_loop_through_catch_stops_after_ten_rounds() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        failing("f"),
        {"id": "c", "type": "catch", "z": "t1", "scope": ["f"], "wires": [["f", "cap"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": "x"})
        await h.quiet(0.1)
        counts = sorted(m["error"]["source"]["count"] for m in h.messages["cap"])
        assert counts == list(range(1, 10))


async def test_a_caught_error_is_not_logged_and_keeps_the_messages_own_error() -> None:
    """Node-RED logs an error only when no catch node handled it, and moves a message's own
    ``error`` to ``_error`` in what the catch node sends."""
    flows = [
        {
            "id": "boom",
            "type": "python-function",
            "z": "t1",
            "wires": [[]],
            "func": "node.error('bad value', msg)\nreturn None",
        },
        {"id": "c", "type": "catch", "z": "t1", "scope": None, "wires": [["out"]]},
        {"id": "out", "type": "helper", "z": "t1"},
        {
            "id": "lone",
            "type": "python-function",
            "z": "t2",
            "wires": [[]],
            "func": "node.error('nobody catches this', msg)\nreturn None",
        },
        {"id": "t2", "type": "tab"},
    ]
    async with FlowHarness(flows) as h:
        h.receive("boom", {"payload": 1, "error": "earlier"})
        (caught,) = await h.wait("out")
        h.receive("lone", {"payload": 2})
        await asyncio.sleep(0.05)
        logged = [item["msg"] for item in h.logs()]
    assert caught["_error"] == "earlier"
    assert caught["error"]["message"] == "bad value"
    assert caught["error"]["source"]["id"] == "boom"
    assert logged == ["nobody catches this"]
