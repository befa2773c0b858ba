"""Node-RED's context-store syntax, ``#:(store)::key``, in every node that reads or writes flow
or global context (``RED.util.parseContextStore``), through tiny flows with two stores: the
memory store as default and a ``file`` store written through at once."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from edge_runner.lib.context_keys import parse_context_store
from edge_runner.runtime.context import ContextStore, ContextStores
from edge_runner.runtime.context_file import FileContextStore
from edge_runner.runtime.engine import Engine
from edge_runner.runtime.paths import RunnerPaths
from edge_runner.testing import FlowHarness

CAPTURE = {"id": "out", "type": "helper"}


class Stores:
    """A memory default store and a ``file`` store in ``<tmp>/context``."""

    def __init__(self, tmp_path: Path) -> None:
        self.paths = RunnerPaths(tmp_path)
        self.memory = ContextStore()
        self.file = FileContextStore(self.paths.context, flush_interval=0)
        self.named = ContextStores({"default": self.memory, "file": self.file})

    def engine(self) -> Engine:
        return Engine(context=self.named, paths=self.paths)

    def on_disk(self, scope: str) -> dict[str, Any]:
        path = self.paths.context / f"{scope.replace(':', '%3A')}.json"
        data: dict[str, Any] = json.loads(path.read_text())
        return data


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores(tmp_path)


def test_parse_context_store_matches_node_red() -> None:
    assert parse_context_store("#:(file)::a.b[0]") == ("file", "a.b[0]")
    assert parse_context_store("#:(memory)::") == ("memory", "")
    assert parse_context_store("plain") == (None, "plain")
    assert parse_context_store("#:(two words)::k") == (None, "#:(two words)::k")  # \S+ only
    assert parse_context_store("#:(file):k") == (None, "#:(file):k")


async def test_change_sets_moves_reads_and_deletes_in_the_named_store(stores: Stores) -> None:
    rules = [
        {"t": "set", "p": "#:(file)::total", "pt": "global", "to": "payload", "tot": "msg"},
        {"t": "set", "p": "#:(file)::seen", "pt": "flow", "to": "true", "tot": "bool"},
        {"t": "set", "p": "back", "pt": "msg", "to": "#:(file)::total", "tot": "global"},
        {"t": "set", "p": "#:(file)::gone", "pt": "global", "to": "x", "tot": "str"},
        {"t": "delete", "p": "#:(file)::gone", "pt": "global"},
        {
            "t": "set",
            "p": "viaJsonata",
            "pt": "msg",
            "to": "$globalContext('#:(file)::total') + 1",
            "tot": "jsonata",
        },
        {
            "t": "set",
            "p": "storeArgument",
            "pt": "msg",
            "to": "[$globalContext('total', 'file'), $flowContext('seen', 'file')]",
            "tot": "jsonata",
        },
    ]
    flow = [{"id": "n1", "type": "change", "rules": rules, "wires": [["out"]]}, CAPTURE]
    async with FlowHarness(flow, engine=stores.engine()) as h:
        h.receive("n1", {"payload": 41})
        (msg,) = await h.wait("out")
    assert msg["back"] == 41
    assert msg["viaJsonata"] == 42
    assert msg["storeArgument"] == [41, True]
    assert stores.on_disk("global") == {"total": 41}
    assert stores.on_disk("flow:t1") == {"seen": True}
    assert stores.memory.data("global") == {}
    assert stores.memory.data("flow:t1") == {}


async def test_switch_reads_its_property_and_rule_values_from_the_named_store(
    stores: Stores,
) -> None:
    stores.memory.data("global")["level"] = 1
    stores.file.data("global")["level"] = 5
    stores.file.data("flow:t1")["limit"] = 3
    flow = [
        {
            "id": "n1",
            "type": "switch",
            "property": "#:(file)::level",
            "propertyType": "global",
            "rules": [{"t": "gt", "v": "#:(file)::limit", "vt": "flow"}, {"t": "else"}],
            "checkall": "false",
            "outputs": 2,
            "wires": [["above"], ["below"]],
        },
        {"id": "above", "type": "helper"},
        {"id": "below", "type": "helper"},
    ]
    async with FlowHarness(flow, engine=stores.engine()) as h:
        h.receive("n1", {"payload": "check"})
        await h.wait("above")
        await h.quiet(0.05)
        assert "below" not in h.messages


async def test_inject_sends_a_value_from_the_named_store(stores: Stores) -> None:
    stores.memory.data("global")["setpoint"] = "memory"
    stores.file.data("global")["setpoint"] = "file"
    flow = [
        {
            "id": "inj",
            "type": "inject",
            "props": [{"p": "payload", "v": "#:(file)::setpoint", "vt": "global"}],
            "wires": [["out"]],
        },
        CAPTURE,
    ]
    async with FlowHarness(flow, engine=stores.engine()) as h:
        h.receive("inj", {})
        (msg,) = await h.wait("out")
    assert msg["payload"] == "file"


async def test_trigger_sends_a_value_from_the_named_store(stores: Stores) -> None:
    stores.file.data("flow:t1")["alarm"] = "ALARM"
    flow = [
        {
            "id": "n1",
            "type": "trigger",
            "op1": "#:(file)::alarm",
            "op1type": "flow",
            "op2type": "nul",
            "duration": "0",
            "wires": [["out"]],
        },
        CAPTURE,
    ]
    async with FlowHarness(flow, engine=stores.engine()) as h:
        h.receive("n1", {"payload": 1})
        (msg,) = await h.wait("out")
    assert msg["payload"] == "ALARM"


async def test_template_renders_from_and_writes_to_the_named_store(stores: Stores) -> None:
    stores.memory.data("flow:t1")["name"] = "memory"
    stores.file.data("flow:t1")["name"] = "file"
    flow = [
        {
            "id": "n1",
            "type": "template",
            "field": "#:(file)::greeting",
            "fieldType": "global",
            "template": "{{flow[file].name}}/{{flow.name}}",
            "wires": [["out"]],
        },
        CAPTURE,
    ]
    async with FlowHarness(flow, engine=stores.engine()) as h:
        h.receive("n1", {})
        await h.wait("out")
    assert stores.on_disk("global") == {"greeting": "file/memory"}
    assert "greeting" not in stores.memory.data("global")


async def test_python_function_context_keys_name_their_store(stores: Stores) -> None:
    flow = [
        {
            "id": "f",
            "type": "python-function",
            "func": (
                "flow.set('#:(file)::count', 3)\n"
                "context.set('#:(file)::mine', 'n')\n"
                "return {'payload': [flow.get('#:(file)::count'), flow.get('count')]}"
            ),
            "wires": [["out"]],
        },
        CAPTURE,
    ]
    async with FlowHarness(flow, engine=stores.engine()) as h:
        h.receive("f", {})
        (msg,) = await h.wait("out")
    assert msg["payload"] == [3, None]
    assert stores.on_disk("flow:t1") == {"count": 3}
    assert stores.on_disk("node:f") == {"mine": "n"}


async def test_an_unknown_store_uses_the_default_with_one_warning(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    rule = {"t": "set", "p": "#:(redis)::k", "pt": "global", "to": "payload", "tot": "msg"}
    flow = [{"id": "n1", "type": "change", "rules": [rule], "wires": [["out"]]}, CAPTURE]
    with caplog.at_level(logging.WARNING, logger="edge_runner.context"):
        async with FlowHarness(flow, engine=stores.engine()) as h:
            h.receive("n1", {"payload": 1})
            h.receive("n1", {"payload": 2})
            await h.wait("out", 2)
    assert stores.memory.data("global") == {"k": 2}
    warnings = [r.getMessage() for r in caplog.records if "Unknown context store" in r.message]
    assert warnings == ["Unknown context store 'redis' specified. Using default store."]
