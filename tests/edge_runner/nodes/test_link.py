"""link in / link out / link call: virtual wires across tabs, calls with return, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.nodes.link import LinkCallNode
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def call_node(h: FlowHarness) -> LinkCallNode:
    node = h.node("call")
    assert isinstance(node, LinkCallNode)
    return node


TABS = [{"id": "t1", "type": "tab"}, {"id": "t2", "type": "tab"}]


async def test_link_out_reaches_link_in_nodes_on_other_tabs_with_copies() -> None:
    flow = [
        *TABS,
        {
            "id": "out",
            "type": "link out",
            "z": "t1",
            "mode": "link",
            "links": ["in1", "in2"],
            "wires": [],
        },
        {"id": "in1", "type": "link in", "z": "t2", "links": ["out"], "wires": [["a"]]},
        {"id": "in2", "type": "link in", "z": "t2", "links": ["out"], "wires": [["b"]]},
        {"id": "a", "type": "helper", "z": "t2"},
        {"id": "b", "type": "helper", "z": "t2"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("out", {"payload": {"v": 1}})
        (a,) = await h.wait("a")
        (b,) = await h.wait("b")
        assert a["payload"] == b["payload"] == {"v": 1}


def call_flow(link_type: str = "static", timeout: str = "30") -> list[dict[str, Any]]:
    return [
        *TABS,
        {
            "id": "call",
            "type": "link call",
            "z": "t1",
            "links": ["svc"],
            "linkType": link_type,
            "timeout": timeout,
            "wires": [["cap"]],
        },
        {"id": "cap", "type": "helper", "z": "t1"},
        {"id": "c", "type": "catch", "z": "t1", "scope": None, "wires": [["errs"]]},
        {"id": "errs", "type": "helper", "z": "t1"},
        {"id": "svc", "type": "link in", "z": "t2", "name": "double", "wires": [["work"]]},
        {
            "id": "work",
            "type": "python-function",
            "z": "t2",
            "outputs": 1,
            "func": (
                "if msg['payload'] == 'ignore':\n    return None\nmsg['payload'] *= 2\nreturn msg"
            ),
            "wires": [["ret"]],
        },
        {"id": "ret", "type": "link out", "z": "t2", "mode": "return", "links": [], "wires": []},
    ]


async def test_link_call_returns_the_reply_and_cleans_link_source() -> None:
    async with FlowHarness(call_flow()) as h:
        h.receive("call", {"payload": 4})
        (out,) = await h.wait("cap")
        assert out["payload"] == 8
        assert "_linkSource" not in out
        assert call_node(h).pending == {}


async def test_dynamic_link_call_by_name_and_by_id_and_unknown_target() -> None:
    async with FlowHarness(call_flow("dynamic")) as h:
        h.receive("call", {"payload": 1, "target": "double"})
        h.receive("call", {"payload": 2, "target": "svc"})
        h.receive("call", {"payload": 3, "target": "nobody"})
        assert [m["payload"] for m in await h.wait("cap", 2)] == [2, 4]
        (err,) = await h.wait("errs")
        assert err["error"]["message"] == "target link in node 'nobody' not found"


async def test_link_call_times_out_with_a_catchable_error() -> None:
    async with FlowHarness(call_flow(timeout="0.05")) as h:
        h.receive("call", {"payload": "ignore"})
        (err,) = await h.wait("errs")
        assert err["error"]["message"] == "timeout"
        assert err["error"]["source"]["id"] == "call"
        assert call_node(h).pending == {}


async def test_return_without_a_caller_is_an_error() -> None:
    async with FlowHarness(call_flow()) as h:
        h.receive("ret", {"payload": 1})
        await h.quiet(0.02)
        assert "no link call to return to" in h.logs(20)[-1]["msg"]


async def test_bad_link_call_timeout_rejects_the_deploy() -> None:
    with pytest.raises(DeployError, match="timeout must be a number"):
        async with FlowHarness(call_flow(timeout="soon")):
            pass
