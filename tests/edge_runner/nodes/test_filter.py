"""``filter``: Node-RED 5 writes ``rbe``; the palette name ``filter`` loads as the same node."""

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

# As Node-RED 5.0.7's editor exports the palette's "filter" node.
NODE_RED_5_EXPORT = {
    "id": "f",
    "type": "rbe",
    "z": "t1",
    "name": "",
    "func": "deadband",
    "gap": "10%",
    "start": "",
    "inout": "out",
    "septopics": True,
    "property": "payload",
    "topi": "topic",
    "x": 310,
    "y": 120,
    "wires": [["out"]],
}


async def run(node: dict[str, Any], values: list[Any]) -> list[Any]:
    async with FlowHarness([node, {"id": "out", "type": "helper"}]) as h:
        for value in values:
            h.receive("f", {"payload": value})
        await h.quiet(0.02)
        return [m["payload"] for m in h.messages.get("out", [])]


@pytest.mark.parametrize("type_name", ["rbe", "filter"])
async def test_both_type_names_run_the_same_filter(type_name: str) -> None:
    node = {**NODE_RED_5_EXPORT, "type": type_name}
    assert await run(node, [100, 105, 111, 111, 90, "x"]) == [100, 111, 90]
    rbe = {**NODE_RED_5_EXPORT, "type": type_name, "func": "rbe", "gap": ""}
    assert await run(rbe, [1, 1, 2, {"a": 1}, {"a": 1}]) == [1, 2, {"a": 1}]


async def test_filter_rejects_what_rbe_rejects() -> None:
    node = {**NODE_RED_5_EXPORT, "type": "filter", "gap": "lots"}
    with pytest.raises(DeployError, match="gap must be a number or a percentage"):
        await run(node, [])


async def test_filter_warns_about_a_value_without_a_number_like_rbe() -> None:
    async with FlowHarness(
        [{**NODE_RED_5_EXPORT, "type": "filter"}, {"id": "out", "type": "helper"}]
    ) as h:
        h.receive("f", {"payload": "none"})
        await h.until(lambda: h.logs(), what="a warning")
        assert h.logs()[0]["msg"] == "no number found in payload"
