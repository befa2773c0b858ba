"""node-red-contrib-modbus flows on our Modbus nodes, against a real pymodbus server.

The nodes below are the ones of a real public flow (``realworld/flows/gh-monlab99-restroom.json``:
their fields exactly as node-red-contrib-modbus's editor wrote them), pointed at the local device.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edge_runner.nodes.modbus_client import with_output_format
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.peers import Plc
from tests.edge_runner.realworld.driver import HERE

pytestmark = [pytest.mark.slow]

RESTROOM = {n["id"]: n for n in json.loads((HERE / "flows/gh-monlab99-restroom.json").read_text())}
RESPONSE = "314ff922e1d6c396"
CLIENT, READER, WRITER, MULTI = (
    "fac5ac0e7086f5a8",
    "8174dd2718709b8c",
    "64f8e3753a84c417",
    "9e91779d44690d43",
)


@pytest.fixture
async def plc() -> AsyncIterator[Plc]:
    device = Plc()
    await device.start()
    yield device
    await device.stop()


def contrib(node_id: str, **changes: Any) -> dict[str, Any]:
    node = {k: v for k, v in RESTROOM[node_id].items() if k not in ("z", "x", "y")}
    return {**node, **changes}


def flow(plc: Plc, *nodes: dict[str, Any]) -> list[dict[str, Any]]:
    client = contrib(CLIENT, tcpPort=str(plc.port), reconnectTimeout="100")
    return [client, *nodes, {"id": "values", "type": "helper"}, {"id": "raw", "type": "helper"}]


async def connected(h: FlowHarness) -> None:
    await h.engine.nodes[CLIENT].node.connection.wait_connected(2)  # type: ignore[attr-defined]  # Node base type; the config node defines it


def test_the_contrib_editors_nodes_are_told_from_ours() -> None:
    assert with_output_format(RESTROOM[READER])["outputFormat"] == "contrib"
    assert with_output_format(RESTROOM[WRITER])["outputFormat"] == "contrib"
    ours = {"type": "modbus-read", "adr": "0", "valueType": "raw", "showStatusActivities": False}
    assert with_output_format({**ours, "emptyMsgOnFail": False})["outputFormat"] == "manifold"
    assert with_output_format({"adr": "0", "quantity": "2"})["outputFormat"] == "manifold"
    kept = {**RESTROOM[READER], "outputFormat": "manifold"}
    assert with_output_format(kept)["outputFormat"] == "manifold"


@pytest.mark.asyncio
async def test_contrib_read_polls_registers_into_both_outputs(plc: Plc) -> None:
    await plc.write("hr", 130, [11, 22, 33, 44, 55])
    reader = contrib(READER, rate="50", rateUnit="ms", wires=[["values"], ["raw"]])
    async with FlowHarness(flow(plc, reader)) as h:
        first, second = (await h.wait("values"))[0], (await h.wait("raw"))[0]
    assert first["payload"] == [11, 22, 33, 44, 55]
    assert first["topic"] == "polling"
    assert first["sendingNodeId"] == READER
    assert first["responseBuffer"]["data"] == [11, 22, 33, 44, 55]
    assert first["responseBuffer"]["buffer"] == bytes([0, 11, 0, 22, 0, 33, 0, 44, 0, 55])
    request = first["input"]["payload"]
    assert (request["fc"], request["address"], request["quantity"], request["unitid"]) == (
        3,
        130,
        5,
        1,
    )
    assert "modbus" not in first  # exactly contrib's message
    assert second["payload"]["data"] == [11, 22, 33, 44, 55]
    assert second["values"] == [11, 22, 33, 44, 55]
    assert second["topic"] == "polling"


@pytest.mark.asyncio
async def test_contrib_read_of_coils_gives_whole_bytes_of_bits(plc: Plc) -> None:
    await plc.write("co", 3, [True, False, True])
    reader = contrib(
        READER, dataType="Coil", adr="3", quantity="3", rate="50", rateUnit="ms", topic="pump"
    )
    async with FlowHarness(flow(plc, {**reader, "wires": [["values"]]})) as h:
        (msg,) = (await h.wait("values"))[:1]
    assert msg["payload"] == [True, False, True, False, False, False, False, False]
    assert msg["responseBuffer"]["buffer"] == bytes([0b101])
    assert msg["topic"] == "pump"


@pytest.mark.asyncio
async def test_contrib_write_single_and_multiple_registers(plc: Plc) -> None:
    writer = contrib(WRITER, wires=[["values"], ["raw"]])
    multi = contrib(MULTI, wires=[["values"], []])
    async with FlowHarness(flow(plc, writer, multi)) as h:
        await connected(h)
        h.receive(WRITER, {"payload": 1234, "topic": "set", "extra": 1})
        first, second = (await h.wait("values"))[0], (await h.wait("raw"))[0]
        assert await plc.read("hr", 130, 1) == [1234]
        assert first["topic"] == "set"
        assert first["payload"]["value"] == 1234
        assert (first["payload"]["fc"], first["payload"]["address"]) == (6, 130)
        assert first["payload"]["messageId"] == first["messageId"]
        assert first["responseBuffer"] == {"address": 130, "value": 1234}
        assert "extra" not in first  # keepMsgProperties is off in this flow
        assert second["payload"] == {"address": 130, "value": 1234}
        assert second["values"]["value"] == 1234

        h.receive(MULTI, {"payload": {"value": "[7,8,9]"}})
        msgs = await h.wait("values", 2)
        assert await plc.read("hr", 131, 3) == [7, 8, 9]
        assert msgs[1]["payload"]["value"] == [7, 8, 9]
        assert msgs[1]["responseBuffer"] == {"address": 131, "length": 3}
        assert msgs[1]["topic"] == MULTI


@pytest.mark.asyncio
async def test_contrib_write_needs_quantity_values_and_writes_nothing_else(plc: Plc) -> None:
    multi = contrib(MULTI, keepMsgProperties=True, wires=[["values"], []])
    catcher = {"id": "catch", "type": "catch", "scope": None, "wires": [["raw"]]}
    async with FlowHarness(flow(plc, multi, catcher)) as h:
        await connected(h)
        h.receive(MULTI, {"payload": [1, 2]})
        (caught,) = await h.wait("raw")
        assert "Quantity should be less or equal to register payload array length: 2" in str(
            caught["error"]["message"]
        )
        assert await plc.read("hr", 131, 3) == [0, 0, 0]
        h.receive(MULTI, {"payload": [1, 2, 3], "extra": "kept"})
        (msg,) = await h.wait("values")
        assert msg["extra"] == "kept"
        assert await plc.read("hr", 131, 3) == [1, 2, 3]


def getter(node_type: str, node_id: str, **fields: Any) -> dict[str, Any]:
    # the fields node-red-contrib-modbus's editor writes for these nodes (its defaults)
    base = {
        "id": node_id,
        "type": node_type,
        "name": "",
        "showStatusActivities": False,
        "showErrors": False,
        "showWarnings": True,
        "server": CLIENT,
        "emptyMsgOnFail": False,
        "keepMsgProperties": False,
        "delayOnStart": False,
        "startDelayTime": "",
        "wires": [["values"], ["raw"]],
    }
    return {**base, **fields}


@pytest.mark.asyncio
async def test_flex_getter_reads_what_the_message_asks_for(plc: Plc) -> None:
    await plc.write("hr", 7, [70, 71, 72])
    await plc.write("co", 0, [True, True])
    node = getter("modbus-flex-getter", "fg", useIOFile=False, ioFile="")
    async with FlowHarness(flow(plc, node)) as h:
        await connected(h)
        h.receive("fg", {"payload": {"fc": 3, "address": 7, "quantity": 3}, "topic": "hr"})
        first, second = (await h.wait("values"))[0], (await h.wait("raw"))[0]
        assert first["payload"] == [70, 71, 72]
        assert first["topic"] == "hr"
        assert first["modbusRequest"]["fc"] == 3
        assert first["responseBuffer"]["buffer"] == bytes([0, 70, 0, 71, 0, 72])
        assert second["payload"]["data"] == [70, 71, 72]
        assert second["values"] == [70, 71, 72]

        h.receive("fg", {"payload": '{"fc": "1", "address": "0", "quantity": "2"}'})
        coils = (await h.wait("values", 2))[1]
        assert coils["payload"] == [True, True, False, False, False, False, False, False]
        assert coils["topic"] == "fg"

        h.receive("fg", {"payload": {"fc": 9}})
        await h.until(lambda: bool(h.logs(20)))
        assert h.logs(20)[0]["msg"] == "FC Not Valid"


@pytest.mark.asyncio
async def test_flex_write_and_getter_of_the_configured_block(plc: Plc) -> None:
    nodes = [
        getter("modbus-flex-write", "fw"),
        getter(
            "modbus-getter",
            "g",
            dataType="HoldingRegister",
            adr="200",
            quantity="2",
            unitid="",
            keepMsgProperties=True,
            wires=[["values"], []],
        ),
    ]
    async with FlowHarness(flow(plc, *nodes)) as h:
        await connected(h)
        write = {"value": [5, 6], "fc": 16, "unitid": 1, "address": 200, "quantity": 2}
        h.receive("fw", {"payload": write})
        (done,) = await h.wait("values")
        assert await plc.read("hr", 200, 2) == [5, 6]
        assert done["responseBuffer"] == {"address": 200, "length": 2}
        assert (await h.wait("raw"))[0]["payload"] == {"address": 200, "length": 2}

        h.receive("fw", {"payload": {"value": "true", "fc": 5, "address": 9, "quantity": 1}})
        await h.wait("values", 2)
        assert await plc.read("co", 9, 1) == [True]

        h.receive("g", {"payload": "go", "note": "kept"})
        got = (await h.wait("values", 3))[2]
        assert got["payload"] == [5, 6]
        assert got["note"] == "kept"  # keepMsgProperties
        assert got["modbusRequest"]["address"] == 200

        h.receive("fw", {"payload": {"value": [1], "fc": 16, "address": 200, "quantity": 2}})
        await h.until(lambda: bool(h.logs(20)))
        assert "Quantity should be less or equal" in h.logs(20)[0]["msg"]
        assert await plc.read("hr", 200, 2) == [5, 6]


@pytest.mark.asyncio
async def test_response_node_shows_the_answer_in_its_status(plc: Plc) -> None:
    shown = contrib(RESPONSE)
    reader = contrib(READER, rate="50", rateUnit="ms", wires=[[], [RESPONSE]])
    async with FlowHarness(flow(plc, reader, {**shown, "registerShowMax": "3"})) as h:
        await h.until(lambda: len(h.statuses(RESPONSE)) >= 2)
    assert h.statuses(RESPONSE)[0] == {"fill": "green", "shape": "ring", "text": "initialized"}
    assert h.statuses(RESPONSE)[1] == {
        "fill": "green",
        "shape": "dot",
        "text": "active got length: 5",
    }
