"""delay: fixed, variable and random delays, rate limits (queue, drop, per topic), reset and
flush, the held-message bound."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edge_runner.nodes import delay as delay_module
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness
from tests.edge_runner.nodes.test_change import conformance_cases, run_conformance_case

pytestmark = pytest.mark.asyncio


def delay(**extra: Any) -> list[dict[str, Any]]:
    node = {
        "id": "n1",
        "type": "delay",
        "pauseType": "delay",
        "timeout": "50",
        "timeoutUnits": "milliseconds",
        "rate": "10",
        "nbRateUnits": "1",
        "rateUnits": "second",
        "randomFirst": "10",
        "randomLast": "30",
        "randomUnits": "milliseconds",
        "drop": False,
        "allowrate": False,
        "outputs": 1,
        "wires": [["out"], ["dropped"]],
    }
    node.update(extra)
    return [node, {"id": "out", "type": "helper"}, {"id": "dropped", "type": "helper"}]


@pytest.mark.slow  # waits on the wall clock: outside `make test-fast`
@pytest.mark.parametrize("case", conformance_cases("delay"))
async def test_conformance(case: dict[str, Any]) -> None:
    await run_conformance_case(case)


async def test_fixed_delay_holds_each_message() -> None:
    async with FlowHarness(delay()) as h:
        start = time.monotonic()
        h.receive("n1", {"payload": 1})
        await h.quiet(0.02)
        assert "out" not in h.messages
        (msg,) = await h.wait("out")
        assert msg["payload"] == 1
        assert time.monotonic() - start >= 0.045


async def test_long_delays_show_how_many_are_held() -> None:
    async with FlowHarness(delay(timeout="2", timeoutUnits="seconds")) as h:
        h.receive("n1", {"payload": 1})
        h.receive("n1", {"payload": 2})
        assert h.statuses("n1")[-1] == {"fill": "blue", "shape": "dot", "text": "2"}
        h.receive("n1", {"reset": True})
        assert h.statuses("n1")[-1] == {"fill": "blue", "shape": "ring", "text": "0"}
        await h.quiet(0.05)
        assert "out" not in h.messages


async def test_random_delay_stays_within_bounds() -> None:
    async with FlowHarness(delay(pauseType="random")) as h:
        start = time.monotonic()
        h.receive("n1", {"payload": 1})
        await h.wait("out")
        assert 0.009 <= h.times["out"][0] - start <= 0.2


async def test_flush_with_a_count_releases_that_many() -> None:
    async with FlowHarness(delay(timeout="1", timeoutUnits="seconds")) as h:
        for i in range(3):
            h.receive("n1", {"payload": i})
        h.receive("n1", {"flush": 2})
        await h.quiet(0.02)
        assert [m["payload"] for m in h.messages["out"]] == [0, 1]


async def test_rate_limit_with_drop_sends_extras_to_the_second_output() -> None:
    async with FlowHarness(delay(pauseType="rate", drop=True, outputs=2)) as h:
        for i in range(3):
            h.receive("n1", {"payload": i})
        await h.quiet(0.12)
        h.receive("n1", {"payload": 3})
        await h.quiet(0.01)
        assert [m["payload"] for m in h.messages["out"]] == [0, 3]
        assert [m["payload"] for m in h.messages["dropped"]] == [1, 2]


async def test_rate_from_msg_rate_when_allowed() -> None:
    async with FlowHarness(delay(pauseType="rate", rate="1", allowrate=True)) as h:
        start = time.monotonic()
        h.receive("n1", {"payload": 0, "rate": 20})
        h.receive("n1", {"payload": 1})
        await h.wait("out", 2)
        assert h.times["out"][1] - start < 0.5


async def test_rate_queue_to_front_and_reset() -> None:
    async with FlowHarness(delay(pauseType="rate", rate="20")) as h:
        h.receive("n1", {"payload": 0})
        h.receive("n1", {"payload": 1})
        h.receive("n1", {"payload": 2, "toFront": True})
        msgs = await h.wait("out", 3)
        assert [m["payload"] for m in msgs] == [0, 2, 1]
        await h.quiet(0.1)  # one empty interval stops the limiter: the next passes at once
        h.receive("n1", {"payload": 3})
        h.receive("n1", {"payload": 4})
        h.receive("n1", {"reset": True})
        await h.quiet(0.15)
        assert [m["payload"] for m in h.messages["out"]] == [0, 2, 1, 3]


async def test_per_topic_queue_keeps_the_latest_of_each_topic() -> None:
    async with FlowHarness(delay(pauseType="queue", rate="20", outputs=2)) as h:
        h.receive("n1", {"payload": 1, "topic": "a"})
        h.receive("n1", {"payload": 2, "topic": "b"})
        h.receive("n1", {"payload": 3, "topic": "a"})
        msgs = await h.wait("out", 2)
        assert [(m["topic"], m["payload"]) for m in msgs] == [("a", 3), ("b", 2)]
        assert [m["payload"] for m in h.messages["dropped"]] == [1]


async def test_timed_mode_releases_every_topic_each_interval() -> None:
    async with FlowHarness(delay(pauseType="timed", rate="10")) as h:
        h.receive("n1", {"payload": 1, "topic": "a"})
        h.receive("n1", {"payload": 2, "topic": "b"})
        msgs = await h.wait("out", 2)
        assert abs(h.times["out"][0] - h.times["out"][1]) < 0.02
        assert sorted(m["payload"] for m in msgs) == [1, 2]


async def test_held_messages_are_bounded_dropping_the_oldest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delay_module, "MAX_HELD", 3)
    async with FlowHarness(delay(pauseType="rate", rate="1")) as h:
        for i in range(6):
            h.receive("n1", {"payload": i})
        node = h.node("n1")
        assert [m["payload"] for m in node.buffer] == [3, 4, 5]  # type: ignore[attr-defined]  # the delay node's own queue
        assert any("dropped the oldest" in log["msg"] for log in h.logs(30))


async def test_stop_cancels_pending_timers() -> None:
    h = FlowHarness(delay(timeout="30", timeoutUnits="milliseconds"))
    async with h:
        h.receive("n1", {"payload": 1})
    await h.quiet(0.06)
    assert "out" not in h.messages


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": "0"},
        {"timeout": "x"},
        {"pauseType": "sometimes"},
        {"outputs": 3},
        {"rateUnits": "week"},
    ],
)
async def test_bad_config_is_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(DeployError):
        async with FlowHarness(delay(**bad)):
            pass
