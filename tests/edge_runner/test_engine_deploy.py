"""Deploy types full / flows / nodes, rejected deploys, lifecycle hardening, runtime events."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from edge_runner.contract import REGISTRY, Category, Msg, Node, NodeConfig, NodeSpec
from edge_runner.runtime import engine as engine_module
from edge_runner.runtime.engine import DeployError, Engine, flows_revision
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio

LIFE: list[str] = []


class LifeConfig(NodeConfig):
    tag: str = ""
    start_fails: bool = False
    start_hangs: bool = False


class LifeNode(Node):
    """Test node: records starts/stops and forwards messages tagged with its config."""

    SPEC: ClassVar[NodeSpec] = NodeSpec(
        type="test-life", version=1, category=Category.COMMON, inputs=1, outputs=1, help="test"
    )
    Config: ClassVar[type[NodeConfig]] = LifeConfig
    config: LifeConfig

    async def start(self) -> None:
        LIFE.append(f"start:{self.id}")
        if self.config.start_fails:
            raise RuntimeError("cannot open port")
        if self.config.start_hangs:
            await asyncio.sleep(60)

    async def stop(self) -> None:
        LIFE.append(f"stop:{self.id}")

    def on_message(self, msg: Msg) -> None:
        msg.setdefault("path", []).append(f"{self.id}:{self.config.tag}")
        self.rt.send(msg)


if REGISTRY.get("test-life") is None:
    REGISTRY.add(LifeNode)


def life(node_id: str, z: str, wires: list[str], tag: str = "") -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "test-life",
        "z": z,
        "tag": tag,
        "x": 1,
        "y": 1,
        "wires": [wires],
    }


def two_tabs() -> list[dict[str, Any]]:
    return [
        {"id": "ta", "type": "tab"},
        {"id": "tb", "type": "tab"},
        life("a1", "ta", ["a2"]),
        life("a2", "ta", ["capa"]),
        {"id": "capa", "type": "helper", "z": "ta", "wires": []},
        life("b1", "tb", ["capb"]),
        {"id": "capb", "type": "helper", "z": "tb", "wires": []},
    ]


def changed(flows: list[dict[str, Any]], node_id: str, **fields: Any) -> list[dict[str, Any]]:
    return [{**n, **fields} if n["id"] == node_id else dict(n) for n in flows]


async def test_nodes_deploy_restarts_only_the_changed_node() -> None:
    flows = two_tabs()
    async with FlowHarness(flows) as h:
        LIFE.clear()
        await h.engine.deploy(changed(flows, "a2", tag="new"), "nodes")
        assert LIFE == ["stop:a2", "start:a2"]
        h.receive("a1", {})
        assert (await h.wait("capa"))[0]["path"] == ["a1:", "a2:new"]


async def test_nodes_deploy_rewires_in_place_without_restarting() -> None:
    flows = two_tabs()
    async with FlowHarness(flows) as h:
        before = h.engine.nodes["a1"]
        LIFE.clear()
        moved = changed(flows, "a1", wires=[["capa"]], x=300)  # new wire and a new position
        await h.engine.deploy(moved, "nodes")
        assert LIFE == []
        assert h.engine.nodes["a1"] is before
        h.receive("a1", {})
        assert (await h.wait("capa"))[0]["path"] == ["a1:"]


async def test_flows_deploy_restarts_only_the_tab_with_a_change() -> None:
    flows = two_tabs()
    async with FlowHarness(flows) as h:
        LIFE.clear()
        await h.engine.deploy(changed(flows, "a1", tag="x"), "flows")
        assert sorted(LIFE) == ["start:a1", "start:a2", "stop:a1", "stop:a2"]


async def test_full_deploy_restarts_everything_and_added_removed_nodes_follow() -> None:
    flows = two_tabs()
    async with FlowHarness(flows) as h:
        LIFE.clear()
        await h.engine.deploy(flows, "full")
        assert sorted(LIFE) == sorted(
            ["stop:a1", "stop:a2", "stop:b1", "start:a1", "start:a2", "start:b1"]
        )
        LIFE.clear()
        smaller = [n for n in flows if n["id"] != "b1"] + [life("a3", "ta", [])]
        await h.engine.deploy(smaller, "nodes")
        assert sorted(LIFE) == ["start:a3", "stop:b1"]


async def test_rejected_deploy_lists_every_bad_node_and_keeps_the_old_flows() -> None:
    flows = two_tabs()
    async with FlowHarness(flows) as h:
        LIFE.clear()
        bad = [
            *flows,
            {
                "id": "s1",
                "type": "test-life",
                "z": "ta",
                "tag": ["not", "a", "string"],
                "wires": [],
            },
            {"id": "w1", "type": "test-life", "z": "ta", "wires": [[7]]},
            {"id": "a1", "type": "test-life", "z": "ta", "wires": []},
            "not even an object",
        ]
        for kind in ("full", "flows", "nodes"):
            with pytest.raises(DeployError) as info:
                await h.engine.deploy(bad, kind)
            by_id = {e["id"]: e["error"] for e in info.value.errors}
            assert "tag" in by_id["s1"]
            assert "node ids" in by_id["w1"]
            assert "duplicate" in by_id["a1"]
            assert "string id and type" in by_id[None]
        assert LIFE == []
        h.receive("a1", {})
        assert (await h.wait("capa"))[0]["path"] == ["a1:", "a2:"]
        with pytest.raises(DeployError, match="unknown deployment type"):
            await h.engine.deploy(flows, "partial")


async def test_a_node_failing_to_start_goes_red_and_the_rest_run(monkeypatch: Any) -> None:
    monkeypatch.setattr(engine_module, "START_TIMEOUT", 0.2)
    flows = [
        {"id": "t1", "type": "tab"},
        {**life("bad", "t1", []), "start_fails": True},
        {**life("slow", "t1", []), "start_hangs": True},
        life("good", "t1", ["cap"]),
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flows) as h:
        assert h.statuses("bad")[-1] == {"fill": "red", "shape": "ring", "text": "cannot open port"}
        assert "0.2 s" in h.statuses("slow")[-1]["text"]
        h.receive("good", {})
        await h.wait("cap")
        h.receive("bad", {})
        await h.quiet(0.02)
        assert not h.engine.nodes["bad"].started


async def test_runtime_events_and_revision_like_node_red() -> None:
    flows = two_tabs()
    async with FlowHarness(flows) as h:
        h.events.clear()
        h.engine.nodes["a1"].status(
            __import__("edge_runner.contract").contract.NodeStatus("green", "dot", "ok")
        )
        rev = await h.engine.deploy(flows, "full")
        topics = [t for t, _ in h.events]
        assert topics[1] == "notification/runtime-state"
        assert h.events[1][1] == {"state": "stop", "deploy": True}
        assert ("status/a1", {}) in h.events  # cleared when the node stopped
        assert ("notification/runtime-state", {"state": "start", "deploy": True}) in h.events
        assert h.events[-1] == ("notification/runtime-deploy", {"revision": rev})
        assert rev == flows_revision(h.engine.flows) == h.engine.revision


async def test_a_raising_node_never_stops_the_engine() -> None:
    flows = [
        {"id": "t1", "type": "tab"},
        {
            "id": "f",
            "type": "python-function",
            "z": "t1",
            "func": "1/0",
            "outputs": 1,
            "wires": [[]],
        },
        life("ok", "t1", ["cap"]),
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flows) as h:
        for _ in range(3):
            h.receive("f", {})
        h.receive("ok", {})
        await h.wait("cap")
        assert len(h.logs(20)) == 3


async def test_removed_nodes_lose_their_context_and_global_stays() -> None:
    engine = Engine()
    flows = [{"id": "t1", "type": "tab"}, life("keep", "t1", []), life("drop", "t1", [])]
    await engine.deploy(flows)
    engine.nodes["drop"].context.set("k", 1)
    engine.global_context.set("g", 2)
    await engine.deploy(flows[:2], "nodes")
    assert "node:drop" not in engine.context.scopes
    assert engine.global_context.get("g") == 2
    await engine.stop()
