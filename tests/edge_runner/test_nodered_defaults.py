"""Every core node type as Node-RED 5's editor writes it (its ``defaults``, read from
Node-RED 5.0.7's own .html files into ``data/nodered5_defaults.json`` by
``data/nodered_defaults.js``), and with fields older Node-RED versions wrote, deploys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_runner.runtime.engine import NOT_NODE_TYPES, Engine
from edge_runner.validate import validate

DEFAULTS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "nodered5_defaults.json").read_text()
)
TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
BROKER = {"id": "broker", "type": "mqtt-broker", "broker": "127.0.0.1", "port": 1883}

# Fields the editor makes the user fill before it deploys (its `required`/validate marks).
FILLED: dict[str, dict[str, Any]] = {
    "mqtt in": {"topic": "sensors/#", "broker": "broker"},
    "mqtt out": {"broker": "broker"},
    "range": {"minin": "0", "maxin": "10", "minout": "0", "maxout": "100"},
    "http in": {"url": "/hook"},
}

# Fields of older Node-RED versions (and MQTT v5 fields of Node-RED 2+ exports).
LEGACY: list[tuple[str, dict[str, Any]]] = [
    ("inject", {"payload": "", "payloadType": "none", "repeat": "", "crontab": "", "once": False}),
    ("inject", {"payload": "on", "topic": "t"}),  # no payloadType, no props
    ("switch", {"property": "payload", "rules": [{"t": "eq", "v": "1"}], "checkall": "true"}),
    ("change", {"action": "replace", "property": "payload", "to": "x", "reg": False}),
    ("change", {"action": "change", "property": "payload", "from": "a", "to": "b"}),
    (
        "mqtt out",
        {
            "topic": "t",
            "broker": "broker",
            "correl": "",
            "expiry": "",
            "respTopic": "",
            "userProps": "",
            "contentType": "",
        },
    ),
    ("debug", {"active": True, "console": "false", "complete": "false"}),
    ("delay", {"pauseType": "delay", "timeout": "5", "timeoutUnits": "seconds", "rate": "1"}),
]


def build(node_type: str, fields: dict[str, Any]) -> list[dict[str, Any]]:
    spec = DEFAULTS.get(node_type, {"config": False})
    node: dict[str, Any] = {"id": "n1", "type": node_type, **fields}
    if not spec["config"]:
        node.update({"z": "t1", "x": 180, "y": 80, "wires": []})
    return [TAB, node, BROKER] if node_type != "mqtt-broker" else [TAB, node]


def editor_fields(node_type: str) -> dict[str, Any]:
    fields = {
        key: f"{node_type} 1" if value == "_DEFAULT_" else value
        for key, value in DEFAULTS[node_type]["defaults"].items()
    }
    return {**fields, **FILLED.get(node_type, {})}


def runnable(node_type: str) -> bool:
    return node_type in NOT_NODE_TYPES or Engine().node_class(node_type) is not None


@pytest.mark.parametrize("node_type", sorted(DEFAULTS))
def test_node_red_5_editor_defaults_deploy(node_type: str) -> None:
    if not runnable(node_type):
        # a core type this runner lacks (yet): the flows are accepted and wait, never refused
        problems = validate(build(node_type, editor_fields(node_type)))
        assert [p.severity for p in problems if p.node_id == "n1"] == ["warning"]
        return
    flows = build(node_type, editor_fields(node_type))
    problems = validate(flows)
    assert [p for p in problems if p.severity == "error"] == [], node_type
    Engine().prepare(flows)


@pytest.mark.parametrize(("node_type", "fields"), LEGACY)
def test_fields_of_older_node_red_versions_deploy(node_type: str, fields: dict[str, Any]) -> None:
    flows = build(node_type, fields)
    assert [p for p in validate(flows) if p.severity == "error"] == []
    prepared = Engine().prepare(flows)
    assert "n1" in prepared.built


def test_the_table_covers_node_red_5_core_types() -> None:
    assert {"inject", "debug", "function", "switch", "change", "mqtt out", "http request"} <= set(
        DEFAULTS
    )
    assert DEFAULTS["mqtt out"]["defaults"].keys() >= {"correl", "expiry", "respTopic", "userProps"}
