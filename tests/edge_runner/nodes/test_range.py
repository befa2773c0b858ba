"""range: scale, clamp, roll, drop, rounding, nested property, bad numbers."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def range_flow(action: str = "scale", **extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "range",
        "minin": "0",
        "maxin": "10",
        "minout": "0",
        "maxout": "100",
        "action": action,
        "round": False,
        "property": "payload",
        "wires": [["out"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}]


async def outputs(flow: list[dict[str, Any]], *values: Any) -> list[Any]:
    async with FlowHarness(flow) as h:
        for value in values:
            h.receive("n1", {"payload": value})
        await h.quiet(0.03)
        return [m.get("payload") for m in h.messages.get("out", [])]


@pytest.mark.parametrize("case", conformance_cases("range"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


async def test_scale_extrapolates_and_keeps_ints_integral() -> None:
    got = await outputs(range_flow(), 5, 20, -1, 2.5)
    assert got == [50, 200, -10, 25]
    assert isinstance(got[0], int)


async def test_clamp_limits_to_the_input_range() -> None:
    assert await outputs(range_flow("clamp"), -5, 5, 50) == [0, 50, 100]


async def test_drop_sends_nothing_outside_the_input_range() -> None:
    assert await outputs(range_flow("drop"), -1, 4, 11, 10) == [40, 100]


async def test_round_half_up_like_math_round() -> None:
    flow = range_flow(minin="0", maxin="1", minout="0", maxout="1", round=True)
    assert await outputs(flow, 2.5, -2.5, 0.49) == [3, -2, 0]


async def test_nested_property_and_numeric_strings() -> None:
    flow = range_flow(property="data.level")
    async with FlowHarness(flow) as h:
        h.receive("n1", {"data": {"level": " 3 "}})
        (msg,) = await h.wait("out")
        assert msg["data"] == {"level": 30}


async def test_not_a_number_is_dropped() -> None:
    assert await outputs(range_flow(), "abc", {"a": 1}, 1) == [10]


@pytest.mark.parametrize(
    "bad", [{"minin": "x"}, {"maxin": "0"}, {"action": "wrap"}, {"maxout": ""}]
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(range_flow(**bad)):
            pass
