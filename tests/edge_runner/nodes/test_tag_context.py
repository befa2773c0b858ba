"""tag-context: reading shapes, timestamp alignment, quality, asset context, output modes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from edge_runner.nodes.tag_context import opcua_ticks, to_epoch_ms
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

MOMENT = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
MOMENT_MS = 1772368215250


def flow(**fields: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "tc",
            "type": "tag-context",
            "site": "plant-7",
            "line": "L2",
            "machine": "motor-3",
            "wires": [["out"]],
            **fields,
        },
        {"id": "out", "type": "helper"},
        {"id": "c", "type": "catch", "scope": None, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]


def test_every_supported_clock_lands_on_the_same_epoch_ms() -> None:
    assert MOMENT.timestamp() * 1000 == MOMENT_MS
    same = [
        MOMENT_MS / 1000,  # epoch seconds
        MOMENT_MS,  # epoch ms
        str(MOMENT_MS),  # a numeric string
        "2026-03-01T12:30:15.250Z",
        "2026-03-01T14:30:15.250+02:00",
        "2026-03-01T12:30:15.250",  # no zone: UTC
        MOMENT,  # an OPC-UA DateTime as asyncua gives it
        MOMENT.replace(tzinfo=None),
        MOMENT.astimezone(timezone(timedelta(hours=-5))),
        opcua_ticks(MOMENT),  # 100-ns ticks since 1601
    ]
    for value in same:
        assert to_epoch_ms(value) == pytest.approx(MOMENT_MS, abs=0.001), value
    assert opcua_ticks(MOMENT) == 134168418152500000
    assert to_epoch_ms(1_000, "ms") == 1000
    assert to_epoch_ms(1_000, "s") == 1_000_000


async def test_a_modbus_tag_map_becomes_one_reading_per_tag() -> None:
    async with FlowHarness(flow(units={"current": "A"})) as h:
        h.receive(
            "tc",
            {
                "topic": "motor",
                "payload": {"vibration": 2.5, "current": 11.0},
                "modbus": {"units": {"vibration": "mm/s"}, "timestamp": MOMENT_MS},
            },
        )
        vib, cur = await h.wait("out", 2)
        assert vib["payload"] == {
            "tag": "vibration",
            "value": 2.5,
            "unit": "mm/s",
            "quality": "good",
            "source": "motor",
            "timestamp": MOMENT_MS,
            "asset": {"site": "plant-7", "line": "L2", "machine": "motor-3"},
        }
        assert vib["topic"] == "vibration"
        assert cur["payload"]["unit"] == "A"
        assert cur["payload"]["value"] == 11.0
        assert vib["_msgid"] != cur["_msgid"]
        assert vib["modbus"] is not cur["modbus"]  # a copy, not a shared object


async def test_array_output_keeps_one_message() -> None:
    async with FlowHarness(flow(output="array")) as h:
        h.receive("tc", {"payload": {"a": 1, "b": 2}, "timestamp": MOMENT_MS / 1000})
        (msg,) = await h.wait("out")
        assert [r["tag"] for r in msg["payload"]] == ["a", "b"]
        assert {r["timestamp"] for r in msg["payload"]} == {MOMENT_MS}


async def test_opcua_style_readings_with_status_codes_and_clock_offset() -> None:
    async with FlowHarness(flow(clockOffset=-1500, source="opc.tcp://plc", output="array")) as h:
        h.receive(
            "tc",
            {
                "payload": [
                    {"name": "temp", "value": 71.5, "sourceTimestamp": MOMENT, "statusCode": 0},
                    {
                        "tag": "press",
                        "value": 2.0,
                        "sourceTimestamp": opcua_ticks(MOMENT),
                        "statusCode": 0x40000000,
                    },
                    {
                        "tag": "flow",
                        "value": None,
                        "timestamp": "2026-03-01T12:30:15.250Z",
                        "statusCode": 0x80320000,
                    },
                ]
            },
        )
        (msg,) = await h.wait("out")
        temp, press, flow_ = msg["payload"]
        assert (temp["tag"], temp["quality"]) == ("temp", "good")
        assert press["quality"] == "uncertain"
        assert flow_["quality"] == "bad"
        assert {r["timestamp"] for r in msg["payload"]} == {MOMENT_MS - 1500}
        assert temp["source"] == "opc.tcp://plc"


async def test_a_bare_value_uses_the_configured_tag_or_the_topic() -> None:
    async with FlowHarness(flow(tag="speed", unit="rpm")) as h:
        before = time.time() * 1000
        h.receive("tc", {"payload": 1450})
        (msg,) = await h.wait("out")
        assert msg["payload"]["tag"] == "speed"
        assert msg["payload"]["unit"] == "rpm"
        assert before - 1 <= msg["payload"]["timestamp"] <= time.time() * 1000 + 1
    async with FlowHarness(flow()) as h:
        h.receive("tc", {"payload": 3, "topic": "line/level"})
        (msg,) = await h.wait("out")
        assert msg["payload"]["tag"] == "line/level"


async def test_bad_readings_are_reported_and_nothing_is_sent() -> None:
    async with FlowHarness(flow()) as h:
        h.receive("tc", {"payload": 5})  # no tag, no topic
        h.receive("tc", {"payload": {"value": 1, "tag": "x", "timestamp": "yesterday"}})
        h.receive("tc", {"payload": {"value": 1, "tag": "x", "quality": "great"}})
        h.receive("tc", {"topic": "t"})
        h.receive("tc", {"payload": {}})
        errs = await h.wait("errs", 5)
        texts = [e["error"]["message"] for e in errs]
        assert texts == [
            "reading has no tag: set the node's Tag or msg.topic",
            "timestamp 'yesterday' is not ISO 8601 nor a number",
            "quality 'great' is not good, uncertain, bad or an OPC-UA status code",
            "msg.payload is missing",
            "the reading map is empty",
        ]
        await h.quiet(0.02)
        assert "out" not in h.messages


async def test_invalid_config_is_rejected() -> None:
    with pytest.raises(DeployError) as info:
        async with FlowHarness(flow(timeFormat="fortnights")):
            pass
    assert "timeFormat" in info.value.errors[0]["error"]
