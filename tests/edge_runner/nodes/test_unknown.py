"""``unknown``: Node-RED's placeholder type runs and swallows messages."""

import pytest

from edge_runner.testing import FlowHarness
from edge_runner.validate import validate

pytestmark = pytest.mark.asyncio


async def test_unknown_node_accepts_messages_and_sends_nothing() -> None:
    node = {
        "id": "u",
        "type": "unknown",
        "z": "t1",
        "name": "node-red-contrib-foo",
        "modules": ["node-red-contrib-foo"],
        "broker": "b1",
        "wires": [["out"]],
    }
    flow = [{"id": "t1", "type": "tab"}, node, {"id": "out", "type": "helper", "z": "t1"}]
    assert [(p.field, p.severity) for p in validate(flow)] == [("broker", "warning")]
    async with FlowHarness(flow) as h:
        h.receive("u", {"payload": 1})
        await h.quiet(0.05)
        assert "out" not in h.messages
        assert h.logs() == []
