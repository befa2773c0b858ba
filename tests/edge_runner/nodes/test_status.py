"""status: reports status changes of nodes in scope, with the source."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.contract import NodeStatus
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def setter(node_id: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "python-function",
        "z": "t1",
        "outputs": 1,
        "name": node_id,
        "func": "node.status({'fill': 'green', 'shape': 'dot', 'text': msg['payload']})",
        "wires": [[]],
    }


async def test_status_changes_arrive_with_their_source_and_scope_filters() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        setter("a"),
        setter("b"),
        {"id": "all", "type": "status", "z": "t1", "scope": None, "wires": [["cap_all"]]},
        {"id": "only_b", "type": "status", "z": "t1", "scope": ["b"], "wires": [["cap_b"]]},
        {"id": "cap_all", "type": "helper", "z": "t1"},
        {"id": "cap_b", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("a", {"payload": "one"})
        h.receive("b", {"payload": "two"})
        got = await h.wait("cap_all", 2)
        assert got[0]["status"] == {
            "fill": "green",
            "shape": "dot",
            "text": "one",
            "source": {"id": "a", "type": "python-function", "name": "a"},
        }
        assert [m["status"]["text"] for m in await h.wait("cap_b")] == ["two"]


async def test_repeated_identical_status_is_reported_once() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        setter("a"),
        {"id": "st", "type": "status", "z": "t1", "wires": [["cap"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        for text in ("same", "same", "other"):
            h.receive("a", {"payload": text})
        await h.quiet(0.02)
        assert [m["status"]["text"] for m in h.messages["cap"]] == ["same", "other"]
        assert [s["text"] for s in h.statuses("a")] == ["same", "other"]


async def test_statuses_shown_while_the_deploy_starts_reach_no_status_node() -> None:
    # Node-RED indexes status nodes after creating every node: the debug node's grey ring of
    # its constructor is shown but never caught. A debug node's source keeps its empty name.
    flow = [
        {"id": "t1", "type": "tab"},
        {"id": "shown", "type": "debug", "z": "t1", "name": "", "tostatus": True, "wires": []},
        {"id": "named", "type": "json", "z": "t1", "name": "", "wires": [[]]},
        {"id": "all", "type": "status", "z": "t1", "scope": None, "wires": [["cap"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        assert h.statuses("shown") == [{"fill": "grey", "shape": "ring"}]
        await h.quiet(0.05)
        assert "cap" not in h.messages
        h.receive("shown", {"payload": "hi"})
        (got,) = await h.wait("cap")
        assert got["status"] == {
            "fill": "grey",
            "shape": "dot",
            "text": "hi",
            "source": {"id": "shown", "type": "debug", "name": ""},
        }
        h.engine.nodes["named"].status(NodeStatus("red", "ring", "x"))
        (_, other) = await h.wait("cap", 2)
        assert other["status"]["source"] == {"id": "named", "type": "json"}  # Node-RED's Node
