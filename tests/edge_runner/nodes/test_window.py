"""window: count and time windows per tag, features, emit policies, combined vectors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness


def flow(**fields: Any) -> list[dict[str, Any]]:
    return [
        {"id": "w", "type": "window", "wires": [["out"]], **fields},
        {"id": "out", "type": "helper"},
        {"id": "c", "type": "catch", "scope": None, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def reading(tag: str, value: float, ts: float | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"tag": tag, "value": value}
    if ts is not None:
        item["timestamp"] = ts
    return item


async def test_count_window_features_match_numpy() -> None:
    values = [1.0, -3.0, 4.5, 2.0, -0.5]
    async with FlowHarness(flow(size=5)) as h:
        for v in values:
            h.receive("w", {"payload": reading("vib", v)})
        (msg,) = await h.wait("out")
        arr = np.asarray(values)
        assert msg["features"] == ["mean", "std", "min", "max", "rms", "peak", "p2p"]
        assert msg["payload"] == pytest.approx(
            [
                arr.mean(),
                arr.std(),
                arr.min(),
                arr.max(),
                math.sqrt((arr**2).mean()),
                np.abs(arr).max(),
                arr.max() - arr.min(),
            ]
        )
        assert msg["tag"] == "vib"
        assert msg["window"]["count"] == 5


async def test_sliding_window_emits_every_n_after_it_is_full() -> None:
    async with FlowHarness(flow(size=3, every=2, features="mean,max")) as h:
        for v in range(1, 9):  # 1..8
            h.receive("w", {"payload": v, "topic": "t"})
        await h.quiet(0.02)
        msgs = h.messages["out"]
        # full at the 3rd sample; then every 2nd new sample: after 3, 5, 7
        assert [m["payload"] for m in msgs] == [[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]
        assert msgs[0]["features"] == ["mean", "max"]


async def test_tumbling_window_starts_over_when_full() -> None:
    async with FlowHarness(flow(size=2, emit="full", features=["mean"])) as h:
        for v in (1, 3, 10, 20, 7):
            h.receive("w", {"payload": v, "topic": "t"})
        await h.quiet(0.02)
        assert [m["payload"] for m in h.messages["out"]] == [[2.0], [15.0]]


async def test_each_tag_has_its_own_window() -> None:
    async with FlowHarness(flow(size=2, features=["min"])) as h:
        h.receive("w", {"payload": [reading("a", 1), reading("b", 10)]})
        h.receive("w", {"payload": [reading("a", 2), reading("b", 20)]})
        a, b = await h.wait("out", 2)
        assert (a["tag"], a["payload"]) == ("a", [1.0])
        assert (b["tag"], b["payload"]) == ("b", [10.0])
        assert a["_msgid"] != b["_msgid"]


async def test_time_window_by_reading_timestamp_drops_old_samples() -> None:
    async with FlowHarness(flow(mode="time", duration=10, features=["mean"])) as h:
        base = 1_700_000_000_000
        for i, v in enumerate([100, 2, 4]):
            h.receive("w", {"payload": reading("temp", v, base + i * 6000)})
        await h.quiet(0.02)
        means = [m["payload"][0] for m in h.messages["out"]]
        # t=0 {100}; t=6 s {100, 2}; t=12 s: the t=0 sample is older than 10 s
        assert means == [100.0, 51.0, 3.0]
        assert h.messages["out"][-1]["window"] == {
            "count": 2,
            "start": base + 6000,
            "end": base + 12000,
        }


async def test_time_tumbling_window_sends_when_the_duration_is_covered() -> None:
    async with FlowHarness(flow(mode="time", duration=1, emit="full", features=["max"])) as h:
        base = 1_700_000_000_000
        for i, v in enumerate([1, 5, 3, 9, 2, 4]):  # every 0.5 s
            h.receive("w", {"payload": reading("x", v, base + i * 500)})
        await h.quiet(0.02)
        assert [m["payload"] for m in h.messages["out"]] == [[5.0], [9.0]]


async def test_combined_tags_make_one_vector_in_the_given_order() -> None:
    async with FlowHarness(flow(size=2, tags="current,vibration", features="mean,p2p")) as h:
        h.receive(
            "w",
            {"payload": [reading("vibration", 1), reading("current", 10), reading("speed", 99)]},
        )
        h.receive("w", {"payload": [reading("vibration", 3), reading("current", 14)]})
        (msg,) = await h.wait("out")
        assert msg["features"] == ["current.mean", "current.p2p", "vibration.mean", "vibration.p2p"]
        assert msg["payload"] == [12.0, 4.0, 2.0, 2.0]
        assert set(msg["window"]) == {"current", "vibration"}


async def test_non_numbers_are_reported_and_the_window_is_unchanged() -> None:
    async with FlowHarness(flow(size=2, features=["mean"])) as h:
        h.receive("w", {"payload": 1, "topic": "t"})
        h.receive("w", {"payload": "high", "topic": "t"})
        h.receive("w", {"payload": float("nan"), "topic": "t"})
        h.receive("w", {"payload": 3, "topic": "t"})
        errs = await h.wait("errs", 2)
        assert errs[0]["error"]["message"] == "value of tag 't' is not a finite number: 'high'"
        (msg,) = await h.wait("out")
        assert msg["payload"] == [2.0]


async def test_invalid_config_is_rejected() -> None:
    for fields, expected in (
        ({"size": 0}, "size must be"),
        ({"features": "mean,median"}, "features"),
        ({"every": 0}, "every must be at least 1"),
        ({"features": "mean,mean"}, "listed twice"),
    ):
        with pytest.raises(DeployError) as info:
            async with FlowHarness(flow(**fields)):
                pass
        assert expected in info.value.errors[0]["error"]
