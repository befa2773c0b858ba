"""Run a tiny flow in-process and capture what reaches its ``helper`` nodes (tests and docs).

    async with FlowHarness(flow) as h:
        h.receive("n1", {"payload": 3})
        msgs = await h.wait("cap", 1)

``helper`` is the recorder node of node-red-node-test-helper: it records every message it
receives. Statuses, warnings and errors of every node are recorded too.

The harness's engine gets ``paths`` as its data directory; without one it gets a fresh
``RunnerPaths.temporary()``, removed when the harness exits (``h.paths`` tells where it is).
A given ``engine`` keeps its own paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

from edge_runner.contract import (
    REGISTRY,
    Category,
    Msg,
    Node,
    NodeConfig,
    NodeSpec,
    clone_msg,
)
from edge_runner.runtime.engine import Engine
from edge_runner.runtime.paths import RunnerPaths

# the harness is a service of the engine it drives, so helper nodes find it through their API
HARNESS_KEY = "testing.harness"


def _no_harness() -> FlowHarness | None:
    return None


class HelperConfig(NodeConfig):
    model_config = NodeConfig.model_config | {"extra": "allow"}


class HelperNode(Node):
    """Test recorder: keeps every message it receives (with the arrival time)."""

    SPEC: ClassVar[NodeSpec] = NodeSpec(
        type="helper",
        version=1,
        category=Category.COMMON,
        inputs=1,
        outputs=1,
        help="Test recorder.",
    )
    Config: ClassVar[type[NodeConfig]] = HelperConfig

    def on_message(self, msg: Msg) -> None:
        harness = self.rt.services.get(HARNESS_KEY, _no_harness)
        if harness is not None:
            harness.record(self.id, msg)
        self.send(msg)


if REGISTRY.get("helper") is None:
    REGISTRY.add(HelperNode)


class FlowHarness:
    def __init__(
        self,
        flow: list[Any],
        env: dict[str, str] | None = None,
        engine: Engine | None = None,
        paths: RunnerPaths | None = None,
    ) -> None:
        self.flow = [dict(n) for n in flow]
        for node in self.flow:
            if node.get("type") not in {"tab", "subflow", "group"} and "wires" not in node:
                node.setdefault("wires", [])
            if node.get("type") not in {"tab", "subflow", "group"}:
                node.setdefault("z", "t1") if "x" in node or "wires" in node else None
        if not any(n.get("type") == "tab" for n in self.flow):
            self.flow.insert(0, {"id": "t1", "type": "tab", "label": "test"})
        self._temporary: RunnerPaths | None = None
        if engine is None:
            if paths is None:
                paths = self._temporary = RunnerPaths.temporary("flow-harness-")
            engine = Engine(env=env, paths=paths)
        self.engine = engine
        self.engine.services.get(HARNESS_KEY, lambda: self)
        self.messages: dict[str, list[Msg]] = {}
        self.times: dict[str, list[float]] = {}
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self.engine.subscribe(self._on_event)

    def _on_event(self, topic: str, data: Any) -> None:
        self.events.append((topic, data))
        self._changed.set()

    def record(self, node_id: str, msg: Msg) -> None:
        self.messages.setdefault(node_id, []).append(clone_msg(msg))
        self.times.setdefault(node_id, []).append(time.monotonic())
        self._changed.set()

    async def __aenter__(self) -> FlowHarness:
        self.engine.services.get(HARNESS_KEY, lambda: self)  # again after a stop() closed it
        await self.engine.deploy(self.flow)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop()
        if self._temporary is not None:
            self._temporary.remove_all()

    @property
    def paths(self) -> RunnerPaths:
        return self.engine.paths

    def receive(self, node_id: str, msg: Msg) -> None:
        self.engine.nodes[node_id].receive(msg)

    def node(self, node_id: str) -> Node:
        return self.engine.nodes[node_id].node

    def statuses(self, node_id: str) -> list[dict[str, Any]]:
        return [data for topic, data in self.events if topic == f"status/{node_id}"]

    def logs(self, level: int | None = None) -> list[dict[str, Any]]:
        return [
            d
            for t, d in self.events
            if t == "debug" and "level" in d and (level is None or d["level"] == level)
        ]

    async def wait(self, node_id: str, count: int = 1, timeout: float = 2.0) -> list[Msg]:  # noqa: ASYNC109  # harness API
        """Wait until ``node_id`` has recorded ``count`` messages; fail with what arrived."""
        await self.until(
            lambda: len(self.messages.get(node_id, [])) >= count,
            timeout,
            f"{count} message(s) at {node_id!r}",
        )
        return self.messages[node_id]

    async def until(
        self,
        predicate: Any,
        timeout: float = 2.0,  # noqa: ASYNC109  # harness API
        what: str = "condition",
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                got = {k: len(v) for k, v in self.messages.items()}
                raise AssertionError(f"timed out waiting for {what}; got {got}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))

    async def quiet(self, seconds: float = 0.1) -> None:
        """Let timers run for ``seconds`` (to assert that nothing more arrives)."""
        await asyncio.sleep(seconds)
