"""The flow model: subflows, groups, env variables, disabled nodes and tabs, config nodes."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from edge_runner.contract import REGISTRY, Category, Msg, Node, NodeConfig, NodeSpec
from edge_runner.runtime.engine import DeployError
from edge_runner.testing import FlowHarness

pytestmark = pytest.mark.asyncio


class PoolConfig(NodeConfig):
    size: int = 1


class PoolNode(Node):
    """Test config node: counts starts and stops."""

    SPEC: ClassVar[NodeSpec] = NodeSpec(
        type="test-pool",
        version=1,
        category=Category.CONFIG,
        inputs=0,
        outputs=0,
        help="test",
        is_config=True,
    )
    Config: ClassVar[type[NodeConfig]] = PoolConfig
    events: ClassVar[list[str]] = []

    async def start(self) -> None:
        PoolNode.events.append(f"start:{self.id}")

    async def stop(self) -> None:
        PoolNode.events.append(f"stop:{self.id}")


class UserConfig(NodeConfig):
    pool: str = ""


class UserNode(Node):
    """Test node using a config node; records whether the pool was running at its start."""

    SPEC: ClassVar[NodeSpec] = NodeSpec(
        type="test-pool-user", version=1, category=Category.COMMON, inputs=1, outputs=1, help="t"
    )
    Config: ClassVar[type[NodeConfig]] = UserConfig
    config: UserConfig

    async def start(self) -> None:
        pool = self.rt.config_node(self.config.pool)
        PoolNode.events.append(f"user-start:{self.id}:pool={pool.id if pool else None}")

    def on_message(self, msg: Msg) -> None:
        pool = self.rt.config_node(self.config.pool)
        msg["pool_size"] = pool.config.size if pool else None  # type: ignore[attr-defined]  # test double
        self.rt.send(msg)


for cls in (PoolNode, UserNode):
    if REGISTRY.get(cls.SPEC.type) is None:
        REGISTRY.add(cls)


def env_fn(node_id: str, names: list[str], z: str = "t1", **extra: Any) -> dict[str, Any]:
    body = "return {'payload': {n: env.get(n) for n in " + repr(names) + "}}"
    return {
        "id": node_id,
        "type": "python-function",
        "z": z,
        "func": body,
        "outputs": 1,
        "wires": [["cap"]],
        **extra,
    }


SUBFLOW = [
    {
        "id": "sf",
        "type": "subflow",
        "name": "Doubler",
        "in": [{"x": 0, "y": 0, "wires": [{"id": "sf_fn"}]}],
        "out": [{"x": 0, "y": 0, "wires": [{"id": "sf_fn", "port": 0}]}],
        "env": [
            {"name": "FACTOR", "type": "num", "value": "2"},
            {"name": "LABEL", "type": "str", "value": "default"},
        ],
    },
    {
        "id": "sf_fn",
        "type": "python-function",
        "z": "sf",
        "outputs": 1,
        "func": (
            "msg['payload'] = msg['payload'] * env.get('FACTOR')\n"
            "msg['label'] = env.get('LABEL')\nmsg['sub'] = env.get('NR_SUBFLOW_NAME')\n"
            "flow.set('seen', (flow.get('seen') or 0) + 1)\nreturn msg"
        ),
        "wires": [[]],
    },
]


async def test_subflow_instances_expand_with_their_own_env_and_flow_context() -> None:
    flow = [
        {"id": "t1", "type": "tab", "label": "main"},
        *SUBFLOW,
        {"id": "i1", "type": "subflow:sf", "z": "t1", "name": "first", "wires": [["cap"]]},
        {
            "id": "i2",
            "type": "subflow:sf",
            "z": "t1",
            "wires": [["cap2"]],
            "env": [
                {"name": "FACTOR", "type": "num", "value": "10"},
                {"name": "LABEL", "type": "str", "value": "custom"},
            ],
        },
        {"id": "cap", "type": "helper", "z": "t1"},
        {"id": "cap2", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("i1", {"payload": 3})
        h.receive("i2", {"payload": 3})
        (one,) = await h.wait("cap")
        (two,) = await h.wait("cap2")
        assert (one["payload"], one["label"], one["sub"]) == (6, "default", "first")
        assert (two["payload"], two["label"], two["sub"]) == (30, "custom", "Doubler")
        assert "i1.sf_fn" in h.engine.nodes
        assert "i2.sf_fn" in h.engine.nodes
        assert h.engine.flow_context("i1").get("seen") == 1
        assert h.engine.flow_context("t1").get("seen") is None


async def test_subflow_passthrough_status_badge_and_uncaught_error_goes_to_parent() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {
            "id": "sf",
            "type": "subflow",
            "name": "S",
            "in": [{"wires": [{"id": "boom"}]}],
            "out": [{"wires": [{"id": "sf"}]}],  # input straight through to output 1
            "status": {"wires": [{"id": "st", "port": 0}]},
        },
        {
            "id": "boom",
            "type": "python-function",
            "z": "sf",
            "outputs": 1,
            "func": (
                "node.status({'fill': 'green', 'shape': 'dot', 'text': 'ran'})\n"
                "raise ValueError('inner')"
            ),
            "wires": [[]],
        },
        {"id": "st", "type": "status", "z": "sf", "scope": None, "wires": [[]]},
        {"id": "inst", "type": "subflow:sf", "z": "t1", "wires": [["cap"]]},
        {"id": "c", "type": "catch", "z": "t1", "scope": ["inst"], "wires": [["errs"]]},
        {"id": "pst", "type": "status", "z": "t1", "scope": ["inst"], "wires": [["stat"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
        {"id": "stat", "type": "helper", "z": "t1"},
        {"id": "errs", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("inst", {"payload": "x"})
        assert (await h.wait("cap"))[0]["payload"] == "x"
        # the status output sets the instance's own badge, seen by the parent's status node
        (status,) = await h.wait("stat")
        assert status["status"] == {
            "fill": "green",
            "shape": "dot",
            "text": "ran",
            "source": {"id": "inst", "type": "subflow:sf"},
        }
        assert h.statuses("inst") == [{"fill": "green", "shape": "dot", "text": "ran"}]
        (err,) = await h.wait("errs")
        assert err["error"]["message"] == "ValueError: inner (line 2)"
        assert err["error"]["source"]["id"] == "inst.boom"


async def test_nested_subflows_and_recursive_subflow_is_rejected() -> None:
    inner = {
        "id": "inner",
        "type": "subflow",
        "name": "inner",
        "in": [{"wires": [{"id": "add"}]}],
        "out": [{"wires": [{"id": "add", "port": 0}]}],
    }
    add = {
        "id": "add",
        "type": "python-function",
        "z": "inner",
        "outputs": 1,
        "func": "msg['payload'] += 1\nreturn msg",
        "wires": [[]],
    }
    outer = {
        "id": "outer",
        "type": "subflow",
        "name": "outer",
        "in": [{"wires": [{"id": "use"}]}],
        "out": [{"wires": [{"id": "use", "port": 0}]}],
    }
    use = {"id": "use", "type": "subflow:inner", "z": "outer", "wires": [[]]}
    flow = [
        {"id": "t1", "type": "tab"},
        inner,
        add,
        outer,
        use,
        {"id": "o1", "type": "subflow:outer", "z": "t1", "wires": [["cap"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("o1", {"payload": 1})
        assert (await h.wait("cap"))[0]["payload"] == 2
        assert "o1.use.add" in h.engine.nodes
        loop = [
            {"id": "t1", "type": "tab"},
            {"id": "self", "type": "subflow", "in": [{"wires": [{"id": "me"}]}], "out": []},
            {"id": "me", "type": "subflow:self", "z": "self", "wires": [[]]},
            {"id": "x", "type": "subflow:self", "z": "t1", "wires": [[]]},
        ]
        with pytest.raises(DeployError) as info:
            await h.engine.deploy(loop)
        assert "nested too deeply" in str(info.value)


async def test_env_resolution_node_group_tab_global_and_builtins() -> None:
    flow = [
        {
            "id": "t1",
            "type": "tab",
            "label": "Main flow",
            "env": [
                {"name": "LEVEL", "value": "tab", "type": "str"},
                {"name": "TABONLY", "value": "5", "type": "num"},
            ],
        },
        {
            "id": "g_out",
            "type": "group",
            "z": "t1",
            "name": "outer",
            "nodes": ["g_in"],
            "env": [{"name": "LEVEL", "value": "outer-group", "type": "str"}],
        },
        {
            "id": "g_in",
            "type": "group",
            "z": "t1",
            "g": "g_out",
            "name": "inner",
            "nodes": ["f"],
            "env": [{"name": "FROMPARENT", "value": "LEVEL", "type": "env"}],
        },
        env_fn(
            "f",
            [
                "LEVEL",
                "TABONLY",
                "FROMPARENT",
                "GLOBALVAR",
                "NR_NODE_ID",
                "NR_NODE_NAME",
                "NR_GROUP_ID",
                "NR_GROUP_NAME",
                "NR_FLOW_ID",
                "NR_FLOW_NAME",
                "NOPE",
            ],
            g="g_in",
            name="reader",
        ),
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow, env={"GLOBALVAR": "engine"}) as h:
        h.receive("f", {})
        (out,) = await h.wait("cap")
        assert out["payload"] == {
            "LEVEL": "outer-group",
            "TABONLY": 5,
            "FROMPARENT": "outer-group",
            "GLOBALVAR": "engine",
            "NR_NODE_ID": "f",
            "NR_NODE_NAME": "reader",
            "NR_GROUP_ID": "g_in",
            "NR_GROUP_NAME": "inner",
            "NR_FLOW_ID": "t1",
            "NR_FLOW_NAME": "Main flow",
            "NOPE": None,
        }


async def test_whole_string_env_references_in_config_fields_are_substituted() -> None:
    flow = [
        {
            "id": "t1",
            "type": "tab",
            "env": [
                {"name": "POOL", "value": "p1", "type": "str"},
                {"name": "SIZE", "value": "4", "type": "num"},
            ],
        },
        {"id": "p1", "type": "test-pool", "z": "t1", "size": "${SIZE}"},
        {"id": "u", "type": "test-pool-user", "z": "t1", "pool": "$(POOL)", "wires": [["cap"]]},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("u", {})
        assert (await h.wait("cap"))[0]["pool_size"] == 4


async def test_config_nodes_start_first_and_stop_last() -> None:
    PoolNode.events.clear()
    flow = [
        {"id": "t1", "type": "tab"},
        {"id": "u", "type": "test-pool-user", "z": "t1", "pool": "p", "wires": [[]]},
        {"id": "p", "type": "test-pool"},
    ]
    async with FlowHarness(flow):
        pass
    assert PoolNode.events == ["start:p", "user-start:u:pool=p", "stop:p"]


async def test_disabled_nodes_and_tabs_do_not_run_and_wires_to_them_are_ignored() -> None:
    flow = [
        {"id": "t1", "type": "tab"},
        {"id": "t2", "type": "tab", "disabled": True},
        {"id": "a", "type": "helper", "z": "t1", "wires": [["off", "cap"]]},
        {"id": "off", "type": "helper", "z": "t1", "d": True, "wires": [[]]},
        {"id": "on_off_tab", "type": "inject", "crontab": "bogus-but-tab-is-off", "z": "t2"},
        {"id": "cap", "type": "helper", "z": "t1"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("a", {"payload": 1})
        await h.wait("cap")
        assert "off" not in h.engine.nodes
        assert "on_off_tab" not in h.engine.nodes
