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
