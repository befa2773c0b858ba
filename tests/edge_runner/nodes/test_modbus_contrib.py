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
