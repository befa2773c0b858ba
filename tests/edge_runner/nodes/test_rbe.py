"""The filter (rbe) node: report by exception, per-topic state, dead and narrow bands."""

from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


def flow(**config: Any) -> list[dict[str, Any]]:
    node = {
        "id": "f",
        "type": "rbe",
        "func": "rbe",
        "gap": "",
        "start": "",
        "inout": "out",
        "septopics": True,
        "property": "payload",
        "topi": "topic",
        "name": "",
        "wires": [["out"]],
    }
    node.update(config)
    return [node, {"id": "out", "type": "helper"}]


async def run(config: dict[str, Any], msgs: list[dict[str, Any]]) -> list[Any]:
    async with FlowHarness(flow(**config)) as h:
        for msg in msgs:
            h.receive("f", msg)
        await h.quiet(0.02)
        return [m["payload"] for m in h.messages.get("out", [])]


def payloads(*values: Any) -> list[dict[str, Any]]:
    return [{"payload": v} for v in values]


async def test_rbe_passes_only_changes_including_deep_objects() -> None:
    got = await run({}, payloads(1, 1, 2, 2, "a", "a", {"a": [1]}, {"a": [1]}, {"a": [2]}))
    assert got == [1, 2, "a", {"a": [1]}, {"a": [2]}]


async def test_rbe_compares_like_javascript_strict_equality() -> None:
    assert await run({}, payloads(True, 1, 1.0, "1")) == [True, 1, "1"]


async def test_rbei_blocks_the_first_value() -> None:
    assert await run({"func": "rbei"}, payloads(1, 1, 2, 2, 3)) == [2, 3]


async def test_separate_topics_keep_their_own_value() -> None:
    msgs = [
        {"topic": "a", "payload": 1},
        {"topic": "b", "payload": 1},
        {"topic": "a", "payload": 1},
        {"topic": "b", "payload": 2},
    ]
    assert await run({}, msgs) == [1, 1, 2]
    assert await run({"septopics": False}, msgs) == [1, 2]


async def test_topic_from_another_property() -> None:
    msgs = [{"src": "a", "payload": 1}, {"src": "b", "payload": 1}, {"src": "a", "payload": 1}]
    assert await run({"topi": "src"}, msgs) == [1, 1]


async def test_reset_forgets_the_last_value_of_the_topic_or_all() -> None:
    msgs = [
        {"topic": "a", "payload": 1},
        {"topic": "b", "payload": 1},
        {"topic": "a", "payload": 1, "reset": True},
        {"topic": "b", "payload": 1},
    ]
    assert await run({}, msgs) == [1, 1, 1]
    msgs = [{"payload": 1}, {"reset": True}, {"payload": 1}]
    assert await run({}, msgs) == [1, 1]


async def test_deadband_passes_changes_greater_than_gap() -> None:
    values = payloads(0, 5, 10, 11, 15, 21, 22)
    assert await run({"func": "deadband", "gap": "10"}, values) == [0, 11, 22]
    assert await run({"func": "deadbandEq", "gap": "10"}, values) == [0, 10, 21]


async def test_deadband_against_last_input() -> None:
    values = payloads(0, 5, 11, 20)
    assert await run({"func": "deadband", "gap": "10", "inout": "in"}, values) == [0]
    values = payloads(0, 11, 22, 25)
    assert await run({"func": "deadband", "gap": "10", "inout": "in"}, values) == [0, 11, 22]


async def test_deadband_percentage_of_last_value() -> None:
    values = payloads(100, 105, 111, 120, 123)
    assert await run({"func": "deadband", "gap": "10%"}, values) == [100, 111, 123]


async def test_deadband_parses_numbers_from_text() -> None:
    values = payloads("10 kW", "12 kW", "25.5 kW")
    assert await run({"func": "deadband", "gap": "5"}, values) == ["10 kW", "25.5 kW"]


async def test_narrowband_blocks_jumps_and_uses_the_start_value() -> None:
    values = payloads(50, 70, 55, 58)
    assert await run({"func": "narrowband", "gap": "10"}, values) == [50, 55, 58]
    values = payloads(50, 95, 99)
    assert await run({"func": "narrowband", "gap": "10", "start": "100"}, values) == [95, 99]


async def test_non_numeric_values_in_band_mode_warn_and_are_dropped() -> None:
    async with FlowHarness(flow(func="deadband", gap="1")) as h:
        h.receive("f", {"payload": "abc"})
        h.receive("f", {"payload": 3})
        await h.wait("out")
        assert [m["payload"] for m in h.messages["out"]] == [3]
        assert any("no number" in e["msg"] for e in h.logs(30))


async def test_message_without_the_property_is_ignored() -> None:
    assert await run({}, [{"topic": "x"}, {"payload": 1}]) == [1]


@pytest.mark.parametrize("bad", [{"gap": "abc"}, {"func": "sometimes"}, {"start": "x"}])
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(flow(**bad)):
            pass
