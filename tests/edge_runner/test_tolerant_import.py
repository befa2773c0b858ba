"""Flows from any Node-RED load (issue #10): contrib types make the flows wait instead of a
400, a config node on a tab that was not exported runs, the global-config's env is global, and
fields another Node-RED version wrote are kept and ignored (logged once)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.testing import FlowHarness
from tests.edge_runner import test_server
from tests.edge_runner.test_server import V2, Runner, frames, probe_flow

runner = test_server.runner  # the real server on 127.0.0.1 (fixture)

CONTRIB = {"id": "c1", "type": "node-red-contrib-bacnet", "z": "t1", "x": 5, "y": 5, "wires": []}


async def test_contrib_types_are_accepted_and_the_flows_wait_for_them(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    await runner.deploy(probe_flow("before"))
    assert (await runner.probe("/probe/before"))[0] == 200
    waiting = probe_flow("waiting", [CONTRIB, {**CONTRIB, "id": "c2", "d": True}])
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        await ws.send_json({"subscribe": "notification/#"})
        await asyncio.sleep(0.05)
        with caplog.at_level(logging.INFO, "edge_runner.engine"):
            status, body = await runner.deploy(waiting)
        assert status == 200
        assert body["missing_types"] == ["node-red-contrib-bacnet"]
        items = await frames(ws, 5)  # 2 retained from the first deploy, 3 of this one
    missing_event = {
        "state": "stop",
        "error": "missing-types",
        "type": "warning",
        "text": "notification.warnings.missing-types",
        "types": ["node-red-contrib-bacnet"],
    }
    assert {"topic": "notification/runtime-state", "data": missing_event} in items
    assert "Waiting for missing types to be registered:" in caplog.messages
    assert " - node-red-contrib-bacnet" in caplog.messages
    # stored as deployed, nothing runs (the old flows stopped too)
    assert [n["id"] for n in (await runner.get_flows())["flows"]][-2:] == ["c1", "c2"]
    assert runner.server.engine.nodes == {}
    assert (await runner.probe("/probe/before"))[0] == 404
    async with runner.client.get(f"{runner.base}/flows/state") as r:
        assert await r.json() == missing_event
    # a late subscriber still learns why nothing runs (retained)
    async with runner.client.ws_connect(f"{runner.base}/comms") as ws:
        await ws.send_json({"subscribe": "notification/runtime-state"})
        assert (await frames(ws, 1))[0]["data"] == missing_event
    # the next deploy without them starts everything, even a "nodes" deploy
    status, body = await runner.deploy(probe_flow("after"), kind="nodes")
    assert (status, "missing_types" in body) == (200, False)
    assert (await runner.probe("/probe/after"))[0] == 200
    async with runner.client.get(f"{runner.base}/flows/state") as r:
        assert await r.json() == {"state": "start"}


async def test_a_waiting_deploy_still_rejects_bad_nodes_of_known_types(runner: Runner) -> None:
    bad = {"id": "bad", "type": "inject", "z": "t1", "crontab": "bogus", "wires": []}
    async with runner.client.post(
        f"{runner.base}/flows", json={"flows": probe_flow("x", [CONTRIB, bad])}, headers=V2
    ) as r:
        assert r.status == 400
        body = await r.json()
    assert [e["id"] for e in body["errors"]] == ["bad"]


async def test_a_config_node_on_a_tab_that_was_not_exported_runs() -> None:
    flows = [
        {"id": "t1", "type": "tab", "label": "F"},
        {"id": "in", "type": "inject", "z": "t1", "payload": '{"a": 1}', "wires": [["j"]]},
        {"id": "j", "type": "json", "z": "gone-tab", "x": 1, "y": 1, "wires": [["out"]]},
        {"id": "cfg", "type": "tls-config", "z": "gone-tab", "verifyservercert": True},
        {"id": "out", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flows) as h:
        assert {"cfg", "j"} <= set(h.engine.nodes)
        h.receive("in", {})
        (msg,) = await h.wait("out")
    assert msg["payload"] == {"a": 1}


async def test_global_config_env_is_seen_by_every_flow() -> None:
    flows = [
        {"id": "gc", "type": "global-config", "env": [{"name": "SITE", "value": "plant-7"}]},
        {"id": "t1", "type": "tab", "env": [{"name": "LINE", "value": "SITE", "type": "env"}]},
        {"id": "in", "type": "inject", "z": "t1", "props": [], "wires": [["ch"]]},
        {
            "id": "ch",
            "type": "change",
            "z": "t1",
            "rules": [
                {"t": "set", "p": "site", "pt": "msg", "to": "SITE", "tot": "env"},
                {"t": "set", "p": "line", "pt": "msg", "to": "LINE", "tot": "env"},
            ],
            "wires": [["out"]],
        },
        {"id": "out", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flows) as h:
        h.receive("in", {})
        (msg,) = await h.wait("out")
    assert (msg["site"], msg["line"]) == ("plant-7", "plant-7")


async def test_unknown_fields_are_kept_and_logged_once_per_type_and_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node: dict[str, Any] = {"type": "json", "z": "t1", "wires": [], "oldOption": 1}
    flows = [{"id": "t1", "type": "tab"}, {**node, "id": "a"}, {**node, "id": "b"}]
    engine = Engine()
    with caplog.at_level(logging.DEBUG, "edge_runner.engine"):
        await engine.deploy(flows)
        await engine.deploy([*flows, {**node, "id": "c"}])
    await engine.stop()
    logged = [m for m in caplog.messages if "oldOption" in m]
    assert logged == ["json: ignoring unknown field 'oldOption' (kept in the flows)"]
    assert engine.flows[1]["oldOption"] == 1


async def test_a_wire_to_a_node_that_is_not_in_the_flows_is_dropped() -> None:
    """Node-RED's runtime drops what is sent to a node it does not have; exports copied in part
    carry such wires."""
    flows = [
        {"id": "in", "type": "inject", "z": "t1", "payload": "x", "wires": [["gone", "out"]]},
        {"id": "out", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flows) as h:
        h.receive("in", {})
        (msg,) = await h.wait("out")
    assert msg["payload"] == "x"


async def test_a_wire_that_is_not_an_id_is_refused() -> None:
    flows = [
        {"id": "t1", "type": "tab"},
        {"id": "in", "type": "inject", "z": "t1", "wires": [["out", 7]]},
        {"id": "out", "type": "debug", "z": "t1"},
    ]
    with pytest.raises(DeployError, match="wires must be a list of lists of node ids"):
        await Engine().deploy(flows)
