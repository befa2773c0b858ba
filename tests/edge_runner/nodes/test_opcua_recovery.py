"""OPC-UA session recovery: the real server stops and a new one starts on the same port; every
node turns red once and green once, the transition is logged once each way, and the
subscription is re-created on the new session with data flowing again."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from edge_runner.testing import FlowHarness
from tests.edge_runner.opcua_server import PlantServer, shared_server

# Outside `make test-fast`: real OPC-UA servers stopped and restarted.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest.fixture
def plant(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> PlantServer:
    return shared_server(
        tmp_path_factory.getbasetemp() / "opcua-server-pki", request.config.add_cleanup
    )


async def test_server_restart_red_once_green_once_and_subscription_recreated(
    plant: PlantServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_runner.connections")
    plant.set_value("Counter", 5)
    flow: list[dict[str, Any]] = [
        {"id": "ep", "type": "opcua-endpoint", "endpoint": plant.url, "reconnectMaxDelay": 0.5},
        {
            "id": "s",
            "type": "opcua-subscribe",
            "endpoint": "ep",
            "nodeIds": ["ns=2;s=Plant.Counter"],
            "interval": 50,
            "wires": [["cap"]],
        },
        {"id": "r", "type": "opcua-read", "endpoint": "ep", "wires": [["got"]]},
        {"id": "cap", "type": "helper"},
        {"id": "got", "type": "helper"},
        {"id": "c", "type": "catch", "scope": None, "wires": [["errs"]]},
        {"id": "errs", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        (first,) = await h.wait("cap", 1, 10)
        assert first["payload"] == 5
        conn = h.node("s").connection  # type: ignore[attr-defined]  # OpcUaSubscribe

        stopped = time.monotonic()
        await asyncio.to_thread(plant.stop)
        await h.until(lambda: h.statuses("s")[-1]["fill"] == "red", 10, "red after stop")
        detected = time.monotonic() - stopped
        h.receive("r", {"topic": "ns=2;s=Plant.Counter"})
        (err,) = await h.wait("errs", 1, 5)
        assert "not connected" in err["error"]["message"]
        await h.quiet(1.5)  # retries fail meanwhile: no further status or log lines

        await asyncio.to_thread(plant.start)  # a new server (fresh sessions) on the same port
        started = time.monotonic()
        await h.until(lambda: h.statuses("s")[-1]["fill"] == "green", 15, "green after start")
        recovered = time.monotonic() - started
        # the new server starts at Counter=0; the re-created item reports it, then changes
        await h.until(lambda: h.messages["cap"][-1]["payload"] == 0, 5, "initial value again")
        plant.set_value("Counter", 9)
        await h.until(lambda: h.messages["cap"][-1]["payload"] == 9, 5, "change after restart")
        h.receive("r", {"topic": "ns=2;s=Plant.Counter"})
        (read,) = await h.wait("got", 1, 5)
        assert read["payload"] == 9

        for node_id in ("s", "r", "ep"):
            assert [s["fill"] for s in h.statuses(node_id)] == [
                "yellow",
                "green",
                "red",
                "green",
            ], node_id
        assert conn.sessions == 2
        assert conn.transitions == 2
        lines = [r.getMessage() for r in caplog.records if r.name == "edge_runner.connections"]
        assert len([t for t in lines if "unavailable" in t]) == 1, lines
        assert len([t for t in lines if "recovered" in t]) == 1, lines
        print(
            f"\nOPC-UA loss detected in {detected:.2f} s; session and subscription back "
            f"{recovered:.2f} s after the server started listening again"
        )
