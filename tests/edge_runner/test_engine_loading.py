"""Lazy node loading: a deploy imports only the node modules its flow uses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_runner.runtime import loader
from edge_runner.runtime.engine import Engine

# Outside `make test-fast`: fresh interpreters (subprocesses).
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def fresh_index(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget the cached index so a test can point the loader at another file."""
    monkeypatch.setattr(loader, "_index", None)
    yield
    loader._index = None


async def test_a_fresh_engine_imports_no_node_module_and_a_deploy_only_those_it_uses() -> None:
    result = run_python(
        """
        import asyncio, json, sys
        import edge_runner.runtime.server
        from edge_runner.runtime.engine import Engine

        def loaded():
            return sorted(m for m in sys.modules if m.startswith("edge_runner.nodes.")
                          and not m.startswith("edge_runner.nodes._"))

        async def main():
            engine = Engine()
            before = loaded()
            pydantic_before = "pydantic" in sys.modules
            await engine.deploy([
                {"id": "t1", "type": "tab"},
                {"id": "a", "type": "change", "z": "t1", "rules": [], "wires": [["b"]]},
                {"id": "b", "type": "python-function", "z": "t1", "func": "return msg",
                 "wires": []},
            ])
            after = loaded()
            await engine.stop()
            print(json.dumps({"before": before, "after": after,
                              "pydantic_before": pydantic_before}))

        asyncio.run(main())
        """
    )
    assert result["before"] == []
    assert result["pydantic_before"] is False  # ~70 ms of startup, paid only when needed
    assert result["after"] == ["edge_runner.nodes.change", "edge_runner.nodes.python_function"]


async def test_unknown_types_make_the_flows_wait_unstarted() -> None:
    engine = Engine()
    flows = [
        {"id": "t1", "type": "tab"},
        {"id": "x", "type": "no-such-type", "z": "t1", "wires": []},
        {"id": "y", "type": "comment", "z": "t1", "wires": []},
    ]
    await engine.deploy(flows)
    assert engine.prepare(flows).missing_types == ["no-such-type"]
    assert (engine.nodes, engine.state) == ({}, "stop")
    await engine.stop()


async def test_a_missing_index_falls_back_to_loading_every_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_index: None
) -> None:
    monkeypatch.setattr(loader, "INDEX_PATH", tmp_path / "missing.json")
    assert loader.node_index() == {}
    engine = Engine()
    await engine.deploy(
        [{"id": "t1", "type": "tab"}, {"id": "c", "type": "comment", "z": "t1", "wires": []}]
    )
    assert engine.nodes["c"].type == "comment"
    await engine.stop()


async def test_the_index_only_ever_names_node_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_index: None
) -> None:
    index = tmp_path / "_index.json"
    index.write_text(
        json.dumps(
            {
                "index_version": 1,
                "types": {"evil": "os", "gone": "edge_runner.nodes.no_such_module"},
            }
        )
    )
    monkeypatch.setattr(loader, "INDEX_PATH", index)
    assert loader.node_index() == {"gone": "edge_runner.nodes.no_such_module"}
    flows = [{"id": "t1", "type": "tab"}, {"id": "g", "type": "gone", "z": "t1", "wires": []}]
    assert Engine().prepare(flows).missing_types == ["gone"]
    reason = loader.unavailable_reason("gone")
    assert reason.startswith("node type 'gone' is unavailable: ModuleNotFoundError")
    loader.FAILED_NODE_MODULES.pop("edge_runner.nodes.no_such_module", None)


async def test_the_committed_index_covers_every_registered_node_type() -> None:
    loader.load_node_modules()
    committed = json.loads(loader.INDEX_PATH.read_text())
    assert committed == json.loads(json.dumps(loader.build_index()))


async def test_warm_up_imports_every_indexed_module_in_the_background() -> None:
    result = run_python(
        """
        import asyncio, gc, json, sys
        from edge_runner.runtime.engine import Engine
        from edge_runner.runtime.loader import node_index

        async def main():
            engine = Engine()
            engine.warm_up(delay=0.01)
            right_after = [m for m in set(node_index().values()) if m in sys.modules]
            for _ in range(400):
                await asyncio.sleep(0.01)
                if engine._warm_up.handle is None:
                    break
            missing = [m for m in set(node_index().values()) if m not in sys.modules]
            print(json.dumps({"right_after": right_after, "missing": missing,
                              "frozen": gc.get_freeze_count()}))
            await engine.stop()

        asyncio.run(main())
        """
    )
    assert result["right_after"] == []
    assert result["missing"] == []
    assert isinstance(result["frozen"], int)
    assert result["frozen"] > 10_000


async def test_stop_cancels_a_pending_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_state", {"all_loaded": False})
    engine = Engine()
    engine.warm_up(delay=60)
    assert engine._warm_up.handle is not None
    await engine.stop()
    assert engine._warm_up.handle is None


async def test_warm_up_does_not_freeze_running_flows() -> None:
    result = run_python(
        """
        import asyncio, gc, json
        from edge_runner.runtime.engine import Engine

        async def main():
            engine = Engine()
            await engine.deploy([{"id": "t1", "type": "tab"},
                                 {"id": "c", "type": "comment", "z": "t1", "wires": []}])
            engine.warm_up(delay=0.01)
            for _ in range(400):
                await asyncio.sleep(0.01)
                if engine._warm_up.handle is None:
                    break
            print(json.dumps({"done": engine._warm_up.handle is None,
                              "frozen": gc.get_freeze_count()}))
            await engine.stop()

        asyncio.run(main())
        """
    )
    # frozen flow nodes would never be collected after the next deploy
    assert result == {"done": True, "frozen": 0}
