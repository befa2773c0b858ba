"""``edge_runner.validate``: every problem a runner would reject, listed per node, found by a
dry run that starts nothing."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from edge_runner.validate import Problem, validate

TAB = {"id": "t1", "type": "tab", "label": "line 1"}


def node(node_id: str, node_type: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "z": "t1", "wires": [], **fields}


def test_valid_flows_have_no_problems() -> None:
    flows = [
        TAB,
        node("inj", "inject", repeat="5", wires=[["fn"]]),
        node("fn", "python-function", func="return msg", wires=[["dbg"]]),
        node("dbg", "debug"),
    ]
    assert validate(flows) == []


def test_parse_errors_are_problems_of_the_array_or_the_item() -> None:
    assert validate({"not": "an array"}) == [
        Problem(None, None, "flows must be a JSON array", None, "error")
    ]
    flows = [TAB, {"type": "debug"}, node("a", "debug"), node("a", "debug"), node("b", "debug")]
    flows[-1]["z"] = []  # a shape that once made the parser raise
    problems = validate(flows)
    assert [(p.node_id, p.message) for p in problems] == [
        (None, "item 1: every node needs a string id and type"),
        ("a", "duplicate node id"),
        ("b", "z must be a string id, got list"),
    ]


def test_every_kind_of_problem_is_listed_per_node_with_its_field() -> None:
    flows = [
        TAB,
        node("outputs", "python-function", outputs=100, timeout="soon"),
        node("syntax", "python-function", func="return msg +"),
        node("cron", "inject", crontab="every blue moon"),
        node("wired", "debug", wires=[["nowhere"]]),
        node("range", "range", minin="", maxin="1", minout="0", maxout="1"),
    ]
    problems = validate(flows)
    by_node: dict[str | None, list[Problem]] = {}
    for problem in problems:
        assert problem.severity == ("warning" if problem.node_id == "wired" else "error")
        by_node.setdefault(problem.node_id, []).append(problem)
    assert set(by_node) == {"outputs", "syntax", "cron", "wired", "range"}
    assert by_node["wired"][0].severity == "warning"  # Node-RED drops such wires too
    assert {p.field for p in by_node["outputs"]} == {"outputs", "timeout"}  # pydantic, per field
    assert by_node["outputs"][0].type == "python-function"
    assert "syntax error" in by_node["syntax"][0].message  # the constructor's compile check
    assert "crontab" in by_node["cron"][0].message
    assert "nowhere" in by_node["wired"][0].message
    assert "minin" in by_node["range"][0].message  # a model validator: no single field


def test_missing_types_and_unknown_fields_are_warnings_not_errors() -> None:
    """A runner accepts both (Node-RED does): flows with a contrib type wait, unstarted; a field
    another Node-RED version wrote is kept and ignored."""
    flows = [
        TAB,
        node("contrib", "node-red-contrib-modbus-read", wires=[["out"]]),
        node("off", "node-red-contrib-gone", d=True),
        node("out", "mqtt out", topic="t", broker="b", correl="", expiry="", userProps=""),
        node("b", "mqtt-broker", broker="127.0.0.1"),
    ]
    problems = validate(flows)
    assert all(p.severity == "warning" for p in problems)
    assert [(p.node_id, p.type) for p in problems if p.field is None] == [
        ("contrib", "node-red-contrib-modbus-read"),
        ("off", "node-red-contrib-gone"),
    ]
    assert "waiting for missing types" in problems[0].message
    # expiry and userProps are mqtt out fields of ours; correl is not (yet)
    assert [(p.node_id, p.field) for p in problems if p.field] == [("out", "correl")]


def test_a_disabled_node_that_would_be_rejected_is_a_warning() -> None:
    flows = [
        TAB,
        {"id": "t2", "type": "tab", "disabled": True},
        node("off", "python-function", d=True, func="return msg +"),
        {**node("offtab", "inject", crontab="bogus"), "z": "t2"},
        node("on", "debug"),
    ]
    problems = validate(flows)
    assert {(p.node_id, p.severity) for p in problems} == {
        ("off", "warning"),
        ("offtab", "warning"),
    }
    assert all("once enabled" in p.message for p in problems)


def test_stored_credentials_feed_credential_environment_variables() -> None:
    tab = {**TAB, "env": [{"name": "BROKER_PORT", "type": "cred"}]}
    flows = [tab, node("broker", "mqtt-broker", broker="127.0.0.1", port="${BROKER_PORT}")]
    assert [p.field for p in validate(flows)] == ["port"]
    assert validate(flows, credentials={"t1": {"BROKER_PORT": "1883"}}) == []


def test_the_dry_run_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "initialize-ran"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        flows = [
            TAB,
            node("broker", "mqtt-broker", broker="127.0.0.1", port=port),
            node("sub", "mqtt in", topic="validate/probe", broker="broker"),
            node(
                "fn",
                "python-function",
                initialize=f"open({str(marker)!r}, 'w').close()\nimport os\nos._exit(9)",
                libs=[{"var": "nothing", "module": "no_such_module_anywhere"}],
            ),
            node("tick", "inject", once=True, onceDelay=0, repeat="1", wires=[["fn"]]),
        ]
        assert validate(flows) == []
        listener.settimeout(0.5)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            conn = None
    assert conn is None, "validate connected to the broker"
    assert not marker.exists()
