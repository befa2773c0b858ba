"""modbus-client / modbus-read / modbus-write against a real pymodbus server on loopback."""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edge_runner.connections import modbus
from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.testing import FlowHarness
from tests.edge_runner.connections.peers import Plc, free_port

# Outside `make test-fast`: a real Modbus server.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest.fixture
async def plc() -> AsyncIterator[Plc]:
    device = Plc(di={5: True})
    await device.start()
    yield device
    await device.stop()


def client(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "mb",
        "type": "modbus-client",
        "tcpHost": "127.0.0.1",
        "tcpPort": str(port),
        "unit_id": "1",
        "clientTimeout": "500",
        "reconnectTimeout": "100",
        "reconnectMaxTimeout": "400",
        **extra,
    }


def reader(node_id: str = "r", **fields: Any) -> dict[str, Any]:
    base = {
        "id": node_id,
        "type": "modbus-read",
        "server": "mb",
        "dataType": "HoldingRegister",
        "adr": "0",
        "quantity": "4",
        "rate": "50",
        "rateUnit": "ms",
        "unitid": "",
        "wires": [["cap"]],
    }
    return {**base, **fields}


CAP = {"id": "cap", "type": "helper"}


async def test_polls_holding_registers_and_reports_connected(plc: Plc) -> None:
    await plc.write("hr", 0, [11, 22, 33, 44])
    async with FlowHarness([client(plc.port), reader(), CAP]) as h:
        msgs = await h.wait("cap", 2)
        assert msgs[0]["payload"] == [11, 22, 33, 44]
        assert msgs[0]["modbus"]["fc"] == 3
        assert msgs[0]["modbus"]["raw"] == [11, 22, 33, 44]
        assert msgs[0]["responseBuffer"]["buffer"] == struct.pack(">4H", 11, 22, 33, 44)
        assert {"fill": "green", "shape": "dot", "text": "connected"} in h.statuses("r")


async def test_decodes_float32_in_word_swapped_order_with_scale_and_offset(plc: Plc) -> None:
    regs = [
        *modbus.encode(1.5, "float32", word_order="little"),
        *modbus.encode(-2.25, "float32", word_order="little"),
    ]
    assert regs[:2] == [0x0000, 0x3FC0]  # CDAB: low word first
    await plc.write("hr", 10, regs)
    flow = [
        client(plc.port),
        reader(adr="10", quantity="4", valueType="float32", wordOrder="little", scale=2, offset=1),
        CAP,
    ]
    async with FlowHarness(flow) as h:
        (msg, *_) = await h.wait("cap")
        assert msg["payload"] == [4.0, -3.5]


async def test_tag_map_gives_named_values_with_units(plc: Plc) -> None:
    await plc.write("hr", 100, [0xFFFE])  # int16 -2
    await plc.write("hr", 101, modbus.encode(70000, "uint32"))
    await plc.write("hr", 103, modbus.encode("AB7", "string", length=2))
    await plc.write("hr", 105, [1234])
    tags = [
        {"name": "delta", "address": 100, "type": "int16"},
        {"name": "count", "address": 101, "type": "uint32"},
        {"name": "model", "address": 103, "type": "string", "length": 2},
        {"name": "temp", "address": 105, "type": "uint16", "unit": "°C", "scale": 0.1},
    ]
    flow = [client(plc.port), reader(adr="100", quantity="6", tags=tags, topic="motor"), CAP]
    async with FlowHarness(flow) as h:
        (msg, *_) = await h.wait("cap")
        assert msg["topic"] == "motor"
        assert msg["payload"]["delta"] == -2
        assert msg["payload"]["count"] == 70000
        assert msg["payload"]["model"] == "AB7"
        assert msg["payload"]["temp"] == pytest.approx(123.4)
        assert msg["modbus"]["units"] == {"temp": "°C"}


async def test_coils_discrete_inputs_and_input_registers(plc: Plc) -> None:
    await plc.write("co", 0, [True, False, True])
    flow = [
        client(plc.port),
        reader("c", dataType="Coil", quantity="3", wires=[["cap"]]),
        reader("d", dataType="Input", adr="5", quantity="1", wires=[["cap2"]]),
        reader("i", dataType="InputRegister", adr="7", quantity="1", wires=[["cap3"]]),
        CAP,
        {"id": "cap2", "type": "helper"},
        {"id": "cap3", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        assert (await h.wait("cap"))[0]["payload"] == [True, False, True]
        assert (await h.wait("cap2"))[0]["payload"] == [True]
        assert (await h.wait("cap3"))[0]["payload"] == [0]


async def test_readers_at_one_interval_share_one_poll_and_one_merged_request(plc: Plc) -> None:
    await plc.write("hr", 0, list(range(1, 21)))
    flow = [
        client(plc.port),
        reader("a", adr="0", quantity="10", rate="100", wires=[["cap"]]),
        reader("b", adr="5", quantity="10", rate="100", wires=[["cap2"]]),
        reader("slow", adr="0", quantity="1", rate="10", rateUnit="s", wires=[]),
        CAP,
        {"id": "cap2", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        await h.wait("cap", 3)
        await h.wait("cap2", 3)
        conn = h.node("mb").connection  # type: ignore[attr-defined]  # ModbusClientNode
        assert sorted(conn.pollers) == [0.1, 10.0]
        fast = conn.pollers[0.1]
        assert fast.requests == fast.polls  # a and b merged into one request per poll
        assert h.messages["cap"][0]["payload"] == list(range(1, 11))
        assert h.messages["cap2"][0]["payload"] == list(range(6, 16))


async def test_two_client_nodes_on_one_endpoint_share_one_connection(plc: Plc) -> None:
    second = {**client(plc.port), "id": "mb2"}
    flow = [client(plc.port), second, reader("a"), reader("b", server="mb2"), CAP]
    async with FlowHarness(flow) as h:
        await h.wait("cap", 2)
        assert h.node("mb").connection is h.node("mb2").connection  # type: ignore[attr-defined]  # Node base type; the config node defines it
        pool = modbus.pool_of(h.engine.services)
        assert len(pool) == 1
        conn = h.node("mb").connection  # type: ignore[attr-defined]  # ModbusClientNode
    assert len(pool) == 0
    assert conn.state == "closed"


async def test_read_on_input_with_an_override(plc: Plc) -> None:
    await plc.write("hr", 50, [7, 8])
    flow = [client(plc.port), reader(rate="0"), CAP]
    async with FlowHarness(flow) as h:
        await h.engine.nodes["mb"].node.connection.wait_connected(2)  # type: ignore[attr-defined]  # Node base type; the config node defines it
        h.receive("r", {"payload": {"address": 50, "quantity": 2}, "topic": "ask"})
        (msg,) = await h.wait("cap")
        assert msg["payload"] == [7, 8]
        assert msg["topic"] == "ask"
        await h.quiet(0.2)
        assert len(h.messages["cap"]) == 1  # rate 0: no polling


async def test_writes_fc5_fc6_fc15_fc16_with_encodings(plc: Plc) -> None:
    def writer(node_id: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": node_id,
            "type": "modbus-write",
            "server": "mb",
            "unitid": "",
            "wires": [["cap"]],
            **fields,
        }

    flow = [
        client(plc.port),
        CAP,
        writer("w5", dataType="Coil", adr="3"),
        writer("w6", dataType="HoldingRegister", adr="20"),
        writer("w15", dataType="MCoils", adr="10"),
        writer(
            "w16",
            dataType="MHoldingRegisters",
            adr="30",
            valueType="float32",
            byteOrder="little",
            wordOrder="little",
        ),
        writer("ws", dataType="MHoldingRegisters", adr="40", valueType="string", length=3),
        writer("wi", dataType="HoldingRegister", adr="50", valueType="int32", scale=0.1),
    ]
    async with FlowHarness(flow) as h:
        await h.engine.nodes["mb"].node.connection.wait_connected(2)  # type: ignore[attr-defined]  # Node base type; the config node defines it
        h.receive("w5", {"payload": True})
        h.receive("w6", {"payload": -2})
        h.receive("w15", {"payload": [True, False, True]})
        h.receive("w16", {"payload": [3.5, -1.0]})
        h.receive("ws", {"payload": "pump"})
        h.receive("wi", {"payload": {"value": -12.3, "address": 52}})
        msgs = await h.wait("cap", 6)
        assert await plc.read("co", 3, 1) == [True]
        assert await plc.read("hr", 20, 1) == [0xFFFE]
        assert await plc.read("co", 10, 3) == [True, False, True]
        regs = await plc.read("hr", 30, 4)
        assert modbus.decode_all(regs, "float32", "little", "little") == [3.5, -1.0]
        assert regs[:2] == [0x0000, 0x6040]  # DCBA of 0x40600000
        assert modbus.decode(await plc.read("hr", 40, 3), "string") == "pump"
        assert modbus.decode(await plc.read("hr", 52, 2), "int32") == -123
        by_fc = {m["modbus"]["address"]: m["modbus"]["fc"] for m in msgs}
        assert by_fc == {3: 5, 20: 6, 10: 15, 30: 16, 40: 16, 52: 16}


async def test_bad_payload_is_a_catchable_error_and_nothing_is_written(plc: Plc) -> None:
    flow = [
        client(plc.port),
        {
            "id": "w",
            "type": "modbus-write",
            "server": "mb",
            "dataType": "HoldingRegister",
            "adr": "60",
            "valueType": "int16",
            "wires": [["cap"]],
        },
        {"id": "catch", "type": "catch", "scope": None, "wires": [["caught"]]},
        {"id": "caught", "type": "helper"},
        CAP,
    ]
    await plc.write("hr", 60, [5])
    async with FlowHarness(flow) as h:
        await h.engine.nodes["mb"].node.connection.wait_connected(2)  # type: ignore[attr-defined]  # Node base type; the config node defines it
        h.receive("w", {"payload": 40000})
        h.receive("w", {"payload": "ten"})
        caught = await h.wait("caught", 2)
        assert "does not fit int16" in caught[0]["error"]["message"]
        assert "a number is needed" in caught[1]["error"]["message"]
        assert await plc.read("hr", 60, 1) == [5]
        assert "cap" not in h.messages


async def test_device_exception_is_reported_once_while_polling(plc: Plc) -> None:
    flow = [client(plc.port), reader(adr="295", quantity="10"), CAP]
    async with FlowHarness(flow) as h:
        await h.until(lambda: len(h.logs(20)) >= 1)
        await h.quiet(0.3)
        errors = [e["msg"] for e in h.logs(20)]
        assert len(errors) == 1
        assert "exception 2 (illegal data address)" in errors[0]


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"quantity": "126"}, "quantity must be 1..125"),
        ({"adr": "x"}, "adr must be a number"),
        ({"tags": [{"name": "t", "address": 9}]}, "outside the read range"),
        ({"valueType": "int32", "quantity": "3"}, "not a whole number of int32"),
        ({"dataType": "Coil", "valueType": "float32"}, "coils and inputs read as booleans"),
    ],
)
async def test_bad_config_is_rejected_at_deploy(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(DeployError) as info:
        await Engine().deploy(
            [
                {"id": "t1", "type": "tab"},
                {**client(1502), "z": "t1"},
                {**reader(**fields), "z": "t1", "wires": []},
            ]
        )
    assert needle in str(info.value)


async def test_device_outage_goes_red_once_and_recovers_green_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge_runner.connections")
    plc = Plc(free_port())
    await plc.start()
    await plc.write("hr", 0, [1, 2, 3, 4])
    try:
        async with FlowHarness([client(plc.port), reader(), reader("r2", adr="2"), CAP]) as h:
            await h.wait("cap", 2)
            await plc.stop()
            await h.until(
                lambda: any(s.get("text") == "unavailable" for s in h.statuses("r")),
                3,
                "unavailable",
            )
            await h.quiet(0.6)  # several failed reconnects: still one transition
            await plc.start()
            await plc.write("hr", 0, [9, 9, 9, 9])
            await h.until(
                lambda: any(m["payload"] == [9, 9, 9, 9] for m in h.messages["cap"]),
                5,
                "reads after recovery",
            )
            texts = [s.get("text") for s in h.statuses("r")]
            assert texts == ["connecting", "connected", "unavailable", "connected"]
            assert [s.get("text") for s in h.statuses("mb")] == [
                "connected",
                "unavailable",
                "connected",
            ]
            assert not h.logs(20)  # an outage is a status, not a per-poll error flood
    finally:
        await plc.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "edge_runner.connections"]
    assert sum("unavailable" in line for line in lines) == 1
    assert sum("recovered" in line for line in lines) == 1
