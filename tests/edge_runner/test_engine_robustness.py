"""Bad input never crashes the engine: generated flows either deploy or give per-node errors;
wire loops stay bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runner.runtime import engine as engine_module
from edge_runner.runtime.engine import DeployError, Engine
from edge_runner.testing import FlowHarness

# Outside `make test-fast`: generated flows.
pytestmark = pytest.mark.slow

IDS = st.sampled_from(["a", "b", "c", "t1", "sf", "g1", "", "missing"])
TYPES = st.sampled_from(
    [
        "tab",
        "subflow",
        "group",
        "helper",
        "catch",
        "status",
        "complete",
        "link in",
        "link out",
        "link call",
        "comment",
        "subflow:sf",
        "subflow:nope",
        "python-function",
        "no-such",
        "",
        7,
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
NODE = st.fixed_dictionaries(
    {"id": IDS, "type": TYPES},
    optional={
        "z": IDS,
        "g": IDS,
        "d": st.booleans(),
        "wires": st.one_of(JSON, st.lists(st.lists(IDS, max_size=3), max_size=3)),
        "env": JSON,
        "scope": JSON,
        "links": st.lists(IDS, max_size=2),
        "in": JSON,
        "out": JSON,
        "func": st.sampled_from(["return msg", "(", "1/0"]),
        "name": JSON,
        "credentials": JSON,
    },
)
FLOWS = st.one_of(st.lists(st.one_of(NODE, JSON), max_size=8), JSON)
# Node-RED's structural keys holding any JSON shape ("z": {...}, "wires": {"a": 1}, a port
# "wires" entry of {"id": [], "port": "x"}): per-node errors, never a crash (issue #7).
ANY_SHAPE = st.one_of(IDS, JSON)
PORT = st.fixed_dictionaries(
    {},
    optional={
        "wires": st.one_of(
            JSON, st.lists(st.fixed_dictionaries({"id": ANY_SHAPE, "port": JSON}), max_size=2)
        )
    },
)
SHAPED_NODE = st.fixed_dictionaries(
    {"id": ANY_SHAPE, "type": st.one_of(TYPES, JSON)},
    optional={
        "z": ANY_SHAPE,
        "g": ANY_SHAPE,
        "d": JSON,
        "disabled": JSON,
        "wires": st.one_of(JSON, st.lists(st.lists(ANY_SHAPE, max_size=3), max_size=3)),
        "env": st.one_of(
            JSON,
            st.lists(
                st.fixed_dictionaries({"name": ANY_SHAPE, "value": JSON, "type": JSON}), max_size=2
            ),
        ),
        "in": st.one_of(JSON, st.lists(PORT, max_size=2)),
        "out": st.one_of(JSON, st.lists(PORT, max_size=2)),
        "status": st.one_of(JSON, PORT),
        "scope": JSON,
        "links": st.one_of(JSON, st.lists(ANY_SHAPE, max_size=2)),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=FLOWS, second=FLOWS, kind=st.sampled_from(["full", "flows", "nodes"]))
def test_generated_flows_deploy_or_fail_with_per_node_errors(
    first: Any, second: Any, kind: str
) -> None:
    async def run() -> None:
        engine = Engine()
        for flows, how in ((first, "full"), (second, kind)):
            before = dict(engine.nodes)
            errors: list[dict[str, Any]] = []
            try:
                await engine.deploy(flows, how)
            except DeployError as exc:
                errors = exc.errors or [{"error": None}]
            if errors:
                assert all(isinstance(e.get("error"), str) for e in errors)
                assert engine.nodes == before  # a rejected deploy changes nothing
        await engine.stop()

    asyncio.run(run())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows=st.lists(SHAPED_NODE, max_size=6))
def test_any_shape_of_structural_keys_gives_per_node_errors(flows: list[Any]) -> None:
    async def run() -> None:
        engine = Engine()
        errors: list[dict[str, Any]] = []
        try:
            await engine.deploy(flows, "full")
        except DeployError as exc:
            errors = exc.errors or [{"error": None}]
        if errors:
            assert all(isinstance(e.get("error"), str) for e in errors)
            assert engine.nodes == {}
        await engine.stop()

    asyncio.run(run())


@pytest.mark.asyncio
async def test_a_fan_out_wire_loop_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(engine_module, "READY_LIMIT", 1000)
    monkeypatch.setattr(engine_module, "BURST_LIMIT", 2000)
    flow = [
        {
            "id": "a",
            "type": "python-function",
            "func": "return msg",
            "outputs": 1,
            "wires": [["a", "a"]],
        },
        {"id": "tick", "type": "helper"},
    ]
    async with FlowHarness(flow) as h:
        h.receive("a", {"payload": 1})
        for _ in range(5):  # the loop keeps turning: other work still gets its turn
            h.receive("tick", {})
            await asyncio.sleep(0.02)
        assert len(h.messages["tick"]) == 5
        assert len(h.engine._ready) <= 1000
        assert h.engine.ready_dropped > 0
        assert any("ready queue full" in log["msg"] for log in h.logs(30))
        h.engine.nodes["a"].started = False  # let the loop die down before stopping
        await h.quiet(0.05)
