"""The engine core: wiring, fan-out cloning, error routing, bad flows rejected."""

import pytest

from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


async def test_fan_out_clones_for_every_target_after_the_first() -> None:
    flow = [
        {"id": "src", "type": "helper", "wires": [["a", "b"]]},
        {"id": "a", "type": "helper"},
        {"id": "b", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("src", {"payload": {"v": 1}})
        (a,) = await h.wait("a")
        (b,) = await h.wait("b")
        assert a == b
        assert a is not b
        assert a["payload"] is not b["payload"]
        assert a["_msgid"]


async def test_deep_chain_does_not_overflow_the_stack() -> None:
    flow = [{"id": f"n{i}", "type": "helper", "wires": [[f"n{i + 1}"]]} for i in range(500)]
    flow.append({"id": "n500", "type": "helper"})
    async with FlowHarness(flow) as h:
        h.receive("n0", {"payload": 1})
        await h.wait("n500")


async def test_bad_flows_are_rejected_with_per_node_errors_and_old_flows_keep_running() -> None:
    good = [{"id": "a", "type": "helper", "wires": [["b"]]}, {"id": "b", "type": "helper"}]
    async with FlowHarness(good) as h:
        bad = [
            {"id": "t1", "type": "tab"},
            {"id": "x", "type": "inject", "z": "t1", "crontab": "bogus", "wires": []},
            {"id": "y", "type": "helper", "z": "t1", "wires": [["out", 7]]},
        ]
        with pytest.raises(DeployError) as info:
            await h.engine.deploy(bad)
        errors = {e["id"]: e["error"] for e in info.value.errors}
        assert "crontab" in errors["x"]
        assert "node ids" in errors["y"]
        h.receive("a", {"payload": 2})
        assert (await h.wait("b"))[0]["payload"] == 2


async def test_flows_must_be_an_array() -> None:
    with pytest.raises(DeployError):
        await Engine().deploy({"not": "a list"})  # type: ignore[arg-type]  # bad input on purpose
