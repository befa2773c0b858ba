"""trigger: op1/op2 types, durations, extend, override delay, reset, per topic, loop mode."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def trigger(**extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "trigger",
        "op1": "1",
        "op2": "0",
        "op1type": "str",
        "op2type": "str",
        "duration": "30",
        "extend": False,
        "overrideDelay": False,
        "units": "ms",
        "reset": "",
        "bytopic": "all",
        "topic": "topic",
        "outputs": 1,
        "wires": [["out"], ["second"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}, {"id": "second", "type": "helper"}]


def payloads(h: FlowHarness, node: str = "out") -> list[Any]:
    return [m.get("payload") for m in h.messages.get(node, [])]


@pytest.mark.parametrize("case", conformance_cases("trigger"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


async def test_messages_while_running_are_ignored_and_status_shows_it() -> None:
    async with FlowHarness(trigger()) as h:
        h.receive("n1", {"payload": "a"})
        h.receive("n1", {"payload": "b"})
        assert h.statuses("n1")[-1] == {"fill": "blue", "shape": "dot", "text": " "}
        await h.wait("out", 2)
        await h.quiet(0.05)
        assert payloads(h) == ["1", "0"]
        assert h.statuses("n1")[-1] == {}


async def test_typed_values_original_and_latest_payload() -> None:
    flow = trigger(op1="", op1type="pay", op2="", op2type="payl")
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": "first"})
        h.receive("n1", {"payload": "latest"})
        await h.wait("out", 2)
        assert payloads(h) == ["first", "latest"]
    flow = trigger(op1="5", op1type="num", op2='{"a":1}', op2type="json")
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": 0})
        await h.wait("out", 2)
        assert payloads(h) == [5, {"a": 1}]


async def test_nothing_then_second_only() -> None:
    async with FlowHarness(trigger(op1type="nul", op2="done")) as h:
        h.receive("n1", {"payload": 1})
        await h.wait("out")
        assert payloads(h) == ["done"]


async def test_extend_restarts_the_timer() -> None:
    async with FlowHarness(trigger(extend=True, duration="60")) as h:
        start = time.monotonic()
        h.receive("n1", {"payload": 1})
        await h.quiet(0.04)
        h.receive("n1", {"payload": 2})
        await h.wait("out", 2)
        assert h.times["out"][1] - start >= 0.095


async def test_override_delay_and_units() -> None:
    async with FlowHarness(trigger(overrideDelay=True, duration="5", units="s")) as h:
        h.receive("n1", {"payload": 1, "delay": 20})
        await h.wait("out", 2, timeout=1.0)


async def test_reset_by_property_and_by_payload_value() -> None:
    async with FlowHarness(trigger(reset="stop")) as h:
        h.receive("n1", {"payload": 1})
        h.receive("n1", {"payload": "stop"})
        await h.quiet(0.06)
        assert payloads(h) == ["1"]
        h.receive("n1", {"payload": 2})
        h.receive("n1", {"reset": True})
        await h.quiet(0.06)
        assert payloads(h) == ["1", "1"]


async def test_zero_duration_waits_for_reset() -> None:
    async with FlowHarness(trigger(duration="0")) as h:
        h.receive("n1", {"payload": 1})
        h.receive("n1", {"payload": 2})
        await h.quiet(0.05)
        assert payloads(h) == ["1"]
        h.receive("n1", {"reset": True})
        h.receive("n1", {"payload": 3})
        await h.quiet(0.01)
        assert payloads(h) == ["1", "1"]


async def test_one_timer_per_topic() -> None:
    async with FlowHarness(trigger(bytopic="topic")) as h:
        h.receive("n1", {"payload": 1, "topic": "a"})
        h.receive("n1", {"payload": 1, "topic": "b"})
        h.receive("n1", {"payload": 1, "topic": "a"})
        msgs = await h.wait("out", 4)
        assert [(m["topic"], m["payload"]) for m in msgs] == [
            ("a", "1"),
            ("b", "1"),
            ("a", "0"),
            ("b", "0"),
        ]


async def test_negative_duration_repeats_until_reset() -> None:
    async with FlowHarness(trigger(duration="-15", op1="tick")) as h:
        h.receive("n1", {"payload": 1})
        await h.wait("out", 3)
        h.receive("n1", {"reset": True})
        count = len(h.messages["out"])
        await h.quiet(0.05)
        assert len(h.messages["out"]) == count
        assert set(payloads(h)) == {"tick"}


async def test_mustache_in_string_values_and_legacy_val_type() -> None:
    flow = trigger(op1="got {{payload}}", op2="true", op2type="val", outputs=2)
    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": "x"})
        await h.wait("second")
        assert payloads(h) == ["got x"]
        assert payloads(h, "second") == [True]


async def test_stop_cancels_the_second_message() -> None:
    h = FlowHarness(trigger())
    async with h:
        h.receive("n1", {"payload": 1})
    await h.quiet(0.06)
    assert payloads(h) == ["1"]


@pytest.mark.parametrize(
    "bad",
    [{"duration": "soon"}, {"units": "weeks"}, {"outputs": 3}, {"op1": "{{#x}}", "op1type": "str"}],
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(trigger(**bad)):
            pass
