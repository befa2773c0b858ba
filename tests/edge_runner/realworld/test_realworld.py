"""Real public Node-RED flows on the runner give the debug output Node-RED 5.0.7 gave.

Each flow of ``manifest.json`` runs in a fresh ``python -m edge_runner serve`` process through
the same driver that recorded Node-RED's golden files (``driver.py``); the comparison is the
driver's. Flows that fail today are listed in ``KNOWN_FAILURES`` with the cause; they are strict
xfails, so a fix elsewhere turns them into failures here until the entry is removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge_runner.realworld.driver import (
    HERE,
    MANIFOLD_CMD,
    FlowEntry,
    Normaliser,
    Peer,
    differences,
    import_fixes,
    load_golden,
    load_manifest,
    localise,
    run_flow,
)

ENTRIES = load_manifest()

# Why each flow differs today, one cause per flow (the first one met).
KNOWN_FAILURES: dict[str, str] = {}


def cases() -> list[object]:
    out: list[object] = []
    for entry in ENTRIES:
        reason = KNOWN_FAILURES.get(entry.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(entry, id=entry.name, marks=marks))
    return out


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    server = Peer()
    yield server
    server.close()


@pytest.mark.slow
@pytest.mark.parametrize("entry", cases())
def test_flow_gives_node_reds_debug_output(entry: FlowEntry, peer: Peer, tmp_path: Path) -> None:
    golden = load_golden(entry)
    assert golden is not None, f"no golden file for {entry.name}: run driver.py --record"
    result = run_flow(MANIFOLD_CMD, entry, tmp_path, peer)
    assert differences(entry, golden, result.as_json()) == [], result.error


def test_corpus_has_forty_sourced_flows_with_golden_files() -> None:
    assert len(ENTRIES) >= 40
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    for entry in ENTRIES:
        assert (HERE / entry.file).is_file(), entry.file
        assert {"repo", "path", "commit", "licence"} <= set(entry.source), entry.name
        assert load_golden(entry) is not None, entry.name
    stale = set(KNOWN_FAILURES) - {e.name for e in ENTRIES}
    assert not stale, f"KNOWN_FAILURES names flows not in the manifest: {stale}"


def test_import_puts_a_tabless_export_on_one_new_tab() -> None:
    exported = json.loads((HERE / "flows" / "gh-aid402-esp01-max6675-mqtt.json").read_text())
    nodes = import_fixes(exported)
    tabs = [n for n in nodes if n["type"] == "tab"]
    assert len(tabs) == 1
    flow_nodes = [n for n in nodes if "wires" in n]
    assert flow_nodes
    assert {n["z"] for n in flow_nodes} == {tabs[0]["id"]}
    broker = next(n for n in nodes if n["type"] == "mqtt-broker")
    assert "z" not in broker


def test_import_moves_a_config_node_of_a_missing_tab_to_the_import_tab() -> None:
    tab = {"id": "t1", "type": "tab", "label": "kept"}
    broker = {"id": "b", "type": "mqtt-broker", "z": "gone", "broker": "localhost"}
    nodes = {n["id"]: n for n in import_fixes([tab, broker])}
    assert nodes["b"]["z"] == "rw.import.tab"
    assert nodes["rw.import.tab"]["type"] == "tab"
    assert "t1" in nodes


def test_import_keeps_tabs_and_wraps_a_single_node() -> None:
    node = {"id": "a", "type": "inject", "z": "t1", "x": 1, "y": 2, "wires": [["b"]]}
    tab = {"id": "t1", "type": "workspace", "label": "old"}
    assert import_fixes([tab, node])[1]["z"] == "t1"
    assert import_fixes([tab, node])[0]["type"] == "tab"
    single = import_fixes(node)
    assert [n["type"] for n in single] == ["tab", "inject"]


def test_localise_keeps_every_connection_on_loopback() -> None:
    nodes: list[dict[str, Any]] = [
        {"id": "r", "type": "http request", "url": "https://nodered.org/docs?x=1", "wires": []},
        {"id": "s", "type": "http request", "url": "http://localhost:1880/hello", "wires": []},
        {"id": "b", "type": "mqtt-broker", "broker": "m10.cloudmqtt.com", "port": "16099"},
        {"id": "m", "type": "mqtt in", "topic": "sensors/#", "broker": "b", "wires": []},
        {"id": "w", "type": "websocket-client", "path": "ws://localhost:1880/ws1"},
    ]
    out = {n["id"]: n for n in localise(nodes, engine_port=4321, peer_port=999, mqtt_prefix="p")}
    assert out["r"]["url"] == "http://127.0.0.1:999/docs?x=1"
    assert out["s"]["url"] == "http://127.0.0.1:4321/hello"
    assert (out["b"]["broker"], out["b"]["port"]) == ("127.0.0.1", "1883")
    assert out["m"]["topic"] == "p/sensors/#"
    assert out["w"]["path"] == "ws://127.0.0.1:4321/ws1"


def test_normaliser_hides_times_ids_and_masked_values() -> None:
    norm = Normaliser(replacements={"127.0.0.1:4321": "localhost:1880"}, mask=("payload.r",))
    item = norm.debug_item(
        {
            "id": "d",
            "format": "Object",
            "msg": json.dumps(
                {
                    "_msgid": "0123456789abcdef",
                    "payload": {"t": 1764780000123, "r": 0.123, "n": 2.0},
                    "at": "2026-12-03T17:20:00.123Z",
                    "url": "http://127.0.0.1:4321/x",
                    "parts": {"id": "fedcba9876543210"},
                    "buf": {"type": "Buffer", "data": [1, 2], "__enc__": True, "length": 2},
                }
            ),
        }
    )
    assert item == {
        "format": "Object",
        "msg": {
            "at": "<time>",
            "buf": {"$buffer": [1, 2]},
            "parts": {"id": "<id>"},
            "payload": {"n": 2, "r": "<masked>", "t": "<timestamp>"},
            "url": "http://localhost:1880/x",
        },
    }
    assert norm.debug_item({"id": "d", "format": "string[13]", "msg": "at 1764780000123"}) == {
        "format": "string",
        "msg": "at <timestamp>",
    }
