"""complete: fires when watched nodes finish a message (return, or node.done())."""

from __future__ import annotations

import pytest

from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


async def test_sync_node_completes_when_it_returns_and_errors_do_not_complete() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {
            "id": "f",
            "type": "python-function",
            "z": "t1",
            "outputs": 1,
            "func": "if msg['payload'] == 'bad':\n    raise ValueError('x')\nreturn None",
            "wires": [[]],
        },
        {
            "id": "done",
            "type": "complete",
            "z": "t1",
            "scope": ["f"],
            "uncaught": False,
            "wires": [["cap"]],
        },
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": "ok"})
        h.receive("f", {"payload": "bad"})
        await h.quiet(0.02)
        assert [m["payload"] for m in h.messages["cap"]] == ["ok"]


async def test_function_calling_node_done_completes_only_then() -> None:
    body = (
        "import asyncio\nasyncio.get_running_loop().call_later(0.05, node.done, msg)\nreturn None"
    )
    flow = [
        {"id": "t1", "type": "tab"},
        {
            "id": "f",
            "type": "python-function",
            "z": "t1",
            "outputs": 1,
            "func": body,
            "wires": [[]],
        },
        {"id": "done", "type": "complete", "z": "t1", "scope": ["f"], "wires": [["cap"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("f", {"payload": "later"})
        await h.quiet(0.01)
        assert "cap" not in h.messages
        assert (await h.wait("cap"))[0]["payload"] == "later"
